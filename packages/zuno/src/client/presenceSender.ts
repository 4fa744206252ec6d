/**
 * The leader tab's `POST /presence`: what every tab of the browser wants the server to show, each
 * tab's value per room (a tab's changes paced to 20 a second, latest wins; joins, leaves and
 * broadcasts at once), with a heartbeat while any tab is in a room. Loaded on demand: an app that
 * never joins a room never downloads it.
 */
import { ZunoError } from '../errors'
import { type ErrorBody, PATHS, PRESENCE_LIMITS, type PresenceAccepted, type PresenceOp, type PresenceRefusal, PROTOCOL_HEADER, PROTOCOL_VERSION } from '../protocol'
import type { Timers } from './connection'
import type { TabPresence } from './presence'

/** What {@link PresenceSender} needs: where and how to post, and whom to tell what the server said. */
export interface PresenceSenderDeps {
  /** The mount's URL, without a trailing slash. */
  readonly url: string
  readonly fetch: typeof fetch
  readonly token: (() => string | undefined) | undefined
  readonly withCredentials: boolean
  readonly timers: Timers
  /** The server does not know the stream: open a new one (its `hello` follows). */
  reconnect(): void
  /** Each tab's peer id, as the server said it. */
  identified(peers: Readonly<Record<string, string>>): void
  /** The server skipped a tab's ops in a room. */
  refused(tab: string, room: string, refusal: PresenceRefusal): void
  /** These broadcasts of a tab went out, or were dropped with their request. */
  sent(tab: string, count: number): void
}

/**
 * A tab's changes of its value go out at most once per this, ms, on average (20 a second), latest
 * wins; one may go early by as much (a burst of 2), so a tab changing at 20 a second, a little
 * early or late, is sent at once every time rather than drifting a period behind.
 */
export const PRESENCE_TICK_MS = 50

/**
 * A stream's requests go at most one per this on average, ms (100 a second: the server's default
 * `maxPresencePerSecond`), in bursts of up to {@link PRESENCE_REQUEST_BURST}: tabs that change a few
 * ms apart each go at once, and a browser never passes the server's budget.
 */
export const PRESENCE_REQUEST_GAP_MS = 10

/** How many requests may go at once, ahead of the stream's pace (well within the server's bursts of twice its rate). */
export const PRESENCE_REQUEST_BURST = 10

/** How often a stream with tabs in rooms tells the server they are still there until the server says (its answers' `heartbeatMs`), ms. */
export const PRESENCE_HEARTBEAT_MS = 5000

/** How long a request may take before it counts as failed, ms (a routed one takes up to 3 s to be refused). */
const REQUEST_TIMEOUT_MS = 10_000

/** How long a failed request waits before the next try, ms (or the server's Retry-After). */
const RETRY_MS = 1000

/** Statuses that refuse the request itself (its body, its size): sent again, it would be refused again. */
const REFUSED_FOR_GOOD: ReadonlySet<number> = new Set([400, 413])

/**
 * The most bytes of values and events one request carries at first: a browser with many tabs in
 * many rooms tells a new stream in several requests. A server that refuses one as too large
 * (`maxBodyBytes`) halves it.
 */
const MAX_REQUEST_BYTES = 64 * 1024

/**
 * The leader tab's `POST /presence`: what every tab of the browser wants shown, told to the stream
 * it holds, each tab's changes on its pace, one request at a time. A new stream (its `hello`) is told all of it.
 */
export class PresenceSender {
  readonly #deps: PresenceSenderDeps
  /** What each tab wants shown, by tab key. */
  readonly #wanted = new Map<string, TabPresence>()
  /** What the server shows for the current stream: each tab's value JSON per room. */
  readonly #shown = new Map<string, Map<string, string>>()
  /** Events to send, each with the length of its JSON. */
  readonly #broadcasts: Array<{ tab: string; room: string; data: unknown; seq: number; bytes: number }> = []
  #streamId: string | undefined
  #timer: unknown
  /** When the timer fires. */
  #timerAt = Number.POSITIVE_INFINITY
  /** No request before this (a failed one's retry, the server's `Retry-After`), unless the page is going. */
  #notBefore = Number.NEGATIVE_INFINITY
  /** The stream a request is out for: one at a time per stream; a new stream need not wait for the last one's (it may take seconds to fail). */
  #sendingFor: string | undefined
  /** The ops of the request on its way, if one is. */
  #inFlight: readonly PresenceOp[] = []
  #lastSent = Number.NEGATIVE_INFINITY
  /** When the stream's next request is due on its pace of one per {@link PRESENCE_REQUEST_GAP_MS} (a burst may go ahead of it). */
  #requestPace = Number.NEGATIVE_INFINITY
  /** Per tab, when its next change is due on the pace of one per {@link PRESENCE_TICK_MS} (one may go a period early). */
  readonly #paceOf = new Map<string, number>()
  #heartbeat: unknown
  /** As the server asks ({@link PresenceAccepted.heartbeatMs}). */
  #heartbeatMs = PRESENCE_HEARTBEAT_MS
  #closed = false
  /** The most bytes of values and events a request carries: {@link MAX_REQUEST_BYTES}, halved by each 413. */
  #maxRequestBytes = MAX_REQUEST_BYTES

  constructor(deps: PresenceSenderDeps) {
    this.#deps = deps
  }

  /** The stream said its id: everything wanted is told to it. */
  hello(streamId: string): void {
    this.#streamId = streamId
    this.#shown.clear()
    // The wait for a retry was the last stream's (its limits are per stream).
    this.#notBefore = Number.NEGATIVE_INFINITY
    this.#schedule()
  }

  /** What tab `tab` wants shown (`undefined`: it is gone). */
  setTab(tab: string, rooms: TabPresence | undefined): void {
    if (rooms === undefined || rooms.size === 0) {
      this.#wanted.delete(tab)
      this.#paceOf.delete(tab)
    } else this.#wanted.set(tab, rooms)
    this.#schedule()
  }

  /** Tab `tab`'s `seq`-th event for `room`. */
  broadcast(tab: string, room: string, data: unknown, seq: number): void {
    this.#broadcasts.push({ tab, room, data, seq, bytes: JSON.stringify(data).length })
    this.#schedule()
  }

  /** Sends what is left now, without waiting for the tick (a tab closing); `keepalive` lets it outlive the page. */
  flushNow(): void {
    if (this.#timer !== undefined) this.#deps.timers.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#timerAt = Number.POSITIVE_INFINITY
    const streamId = this.#streamId
    if (this.#sendingFor === undefined || this.#sendingFor !== streamId) return void this.#send(true)
    // A request is on its way, and its answer may never be read (the page is going): the leaves go
    // now too, beside it, for the rooms it shows or is showing that no tab wants any more.
    if (streamId === undefined || this.#closed) return
    const leaves = this.#leavesBeside(this.#inFlight)
    if (leaves.length > 0) void this.#post({ streamId, ops: leaves }, true)
  }

  close(): void {
    this.#closed = true
    if (this.#timer !== undefined) this.#deps.timers.clearTimeout(this.#timer)
    if (this.#heartbeat !== undefined) this.#deps.timers.clearTimeout(this.#heartbeat)
  }

  /** Sends when the next op is due (at once for a join, a leave, a broadcast; on its tab's pace for a change): sooner than the timer set, if it is. */
  #schedule(): void {
    const now = performance.now()
    const delay = this.#dueIn(now)
    if (this.#closed || delay === Number.POSITIVE_INFINITY || now + delay >= this.#timerAt) return
    if (this.#timer !== undefined) this.#deps.timers.clearTimeout(this.#timer)
    this.#timerAt = now + delay
    this.#timer = this.#deps.timers.setTimeout(() => {
      this.#timer = undefined
      this.#timerAt = Number.POSITIVE_INFINITY
      void this.#send(false)
    }, delay)
  }

  /** How long until a request is due, ms: the next op's time, no sooner than a gap after the last request; infinite with nothing to send. */
  #dueIn(now: number): number {
    let dueAt = Number.POSITIVE_INFINITY
    if (this.#broadcasts.length > 0) dueAt = now
    for (const [tab, rooms] of this.#wanted) {
      const shown = this.#shown.get(tab)
      for (const [room, { json }] of rooms) {
        const current = shown?.get(room)
        if (current === json) continue
        dueAt = Math.min(dueAt, current === undefined ? now : this.#changeDueAt(tab))
      }
    }
    for (const [tab, shown] of this.#shown) for (const room of shown.keys()) if (this.#wanted.get(tab)?.has(room) !== true) dueAt = now
    if (dueAt === Number.POSITIVE_INFINITY) return dueAt
    const requestDueAt = this.#requestPace - PRESENCE_REQUEST_GAP_MS * PRESENCE_REQUEST_BURST
    return Math.max(0, dueAt - now, requestDueAt - now, this.#notBefore - now)
  }

  /** When tab `tab` may send its next change: a period before its pace's next slot. */
  #changeDueAt(tab: string): number {
    return (this.#paceOf.get(tab) ?? Number.NEGATIVE_INFINITY) - PRESENCE_TICK_MS
  }

  /**
   * The ops that bring what the server shows to what the tabs want: joins, and the changes of the
   * tabs their pace lets go (all of them with `unpaced`), the broadcasts, then the leaves (an event
   * sent just before leaving goes while the tab is still in the room).
   */
  #ops(now: number, unpaced: boolean): PresenceOp[] {
    const ops: PresenceOp[] = []
    // At most maxOps ops and #maxRequestBytes of JSON (each op's value or event, room, and about 64
    // bytes of the rest): what does not fit goes with the next request.
    let bytes = 0
    const fits = (size: number) => ops.length < PRESENCE_LIMITS.maxOps && (ops.length === 0 || bytes + size + 64 <= this.#maxRequestBytes) && ((bytes += size + 64), true)
    for (const [tab, rooms] of this.#wanted) {
      const shown = this.#shown.get(tab)
      const mayChange = unpaced || this.#changeDueAt(tab) <= now
      for (const [room, { json }] of rooms) {
        const current = shown?.get(room)
        // The value as measured (`undefined` and the like as `null`): what was checked is what goes.
        if (current !== json && (current === undefined || mayChange) && fits(json.length + room.length)) ops.push({ tab, room, state: JSON.parse(json) })
      }
    }
    for (const { tab, room, data, seq, bytes: size } of this.#broadcasts) {
      // In order: an event that does not fit holds back the ones after it.
      if (!fits(size + room.length)) break
      ops.push({ tab, room, broadcast: data, seq })
    }
    for (const [tab, shown] of this.#shown) {
      const rooms = this.#wanted.get(tab)
      for (const room of shown.keys()) if (rooms?.has(room) !== true && fits(room.length)) ops.push({ tab, room, leave: true })
    }
    return ops
  }

  /** A leave for each room a tab is shown in, or is being shown in by `inFlight`, that it no longer wants. */
  #leavesBeside(inFlight: readonly PresenceOp[]): PresenceOp[] {
    const shown = new Set<string>()
    const ops: PresenceOp[] = []
    const leave = (tab: string, room: string) => {
      const key = `${tab} ${room}`
      if (shown.has(key) || this.#wanted.get(tab)?.has(room) === true) return
      shown.add(key)
      ops.push({ tab, room, leave: true })
    }
    for (const [tab, rooms] of this.#shown) for (const room of rooms.keys()) leave(tab, room)
    for (const op of inFlight) if (op.leave !== true && op.broadcast === undefined) leave(op.tab, op.room)
    return ops.slice(0, PRESENCE_LIMITS.maxOps)
  }

  async #send(keepalive: boolean): Promise<void> {
    const streamId = this.#streamId
    if (streamId === undefined || this.#sendingFor === streamId || this.#closed) return
    const now = performance.now()
    // A timer set before a failed request's retry wait: it waits too (unless the page is going).
    if (!keepalive && now < this.#notBefore) return this.#schedule()
    const ops = this.#ops(now, keepalive)
    const beat = now - this.#lastSent >= this.#heartbeatMs - PRESENCE_TICK_MS
    if (ops.length === 0 && (!beat || this.#wanted.size === 0)) {
      // Changes held by their tabs' pace go when it lets them.
      this.#schedule()
      return this.#beatLater()
    }
    // A request with a tab's changes (not only joins) spends one slot of the tab's pace.
    const changed = new Set(ops.filter((op) => op.state !== undefined && this.#shown.get(op.tab)?.has(op.room) === true).map((op) => op.tab))
    for (const tab of changed) this.#paceOf.set(tab, Math.max(this.#paceOf.get(tab) ?? now, now) + PRESENCE_TICK_MS)
    // Taken off the queue while out; put back at its head if the request fails, so none is lost.
    const broadcasts = this.#broadcasts.splice(0, ops.filter((op) => op.broadcast !== undefined).length)
    let delivered = false
    this.#sendingFor = streamId
    this.#inFlight = ops
    // Monotonic: a step of the wall clock neither stalls nor hurries the pace.
    this.#lastSent = now
    this.#requestPace = Math.max(this.#requestPace, now) + PRESENCE_REQUEST_GAP_MS
    let retryIn: number | undefined
    try {
      const answer = await this.#post({ streamId, ops }, keepalive)
      if (this.#closed) return
      if (streamId !== this.#streamId) {
        // Answered for a stream since replaced: the new one is told all of it, and the broadcasts
        // that did not go with it.
        if (answer instanceof ZunoError) this.#broadcasts.unshift(...broadcasts)
        else delivered = true
        return
      }
      if (answer instanceof ZunoError && answer.status === 413 && ops.length > 1) {
        // Larger than the server takes (its `maxBodyBytes`): the same ops go again, fewer at a time,
        // down to one a request (one refused alone is refused for good, below).
        this.#broadcasts.unshift(...broadcasts)
        this.#maxRequestBytes = Math.floor(this.#maxRequestBytes / 2)
        return
      }
      if (answer instanceof ZunoError && REFUSED_FOR_GOOD.has(answer.status)) {
        // The same request would be refused again (a server with smaller limits than the
        // replica checks for): its rooms show the error rather than be asked for again and again.
        for (const op of ops) {
          if (op.leave === true) this.#forget(op.tab, op.room)
          else if (op.broadcast === undefined) this.#refuse(op.tab, op.room, { error: answer.code, message: answer.message, tabs: [op.tab] })
        }
        delivered = true // dropped, with its rooms told why
        return
      }
      if (answer instanceof ZunoError) {
        this.#broadcasts.unshift(...broadcasts)
        // Gone: the next stream's hello tells it all again. Anything else: tried again shortly.
        if (answer.code === 'unknown_stream') {
          // The server no longer knows it (it ended, or the request found no way to it): a new stream
          // (its hello) is told all of it; asked for, since an open stream would never bring one.
          this.#streamId = undefined
          this.#deps.reconnect()
        }
        else retryIn = (answer.retryAfter ?? 0) * 1000 || RETRY_MS
        return
      }
      for (const op of ops) {
        if (op.broadcast !== undefined) continue
        let shown = this.#shown.get(op.tab)
        if (shown === undefined) this.#shown.set(op.tab, (shown = new Map()))
        if (op.leave === true) shown.delete(op.room)
        else shown.set(op.room, JSON.stringify(op.state))
        if (shown.size === 0) this.#shown.delete(op.tab)
      }
      delivered = true
      for (const [room, refusal] of Object.entries(answer.refused ?? {})) {
        // Only the tabs named: another tab's ops in the room may have been applied.
        for (const tab of new Set(refusal.tabs ?? ops.filter((op) => op.room === room).map((op) => op.tab))) this.#refuse(tab, room, refusal)
      }
      if (answer.heartbeatMs > 0) this.#heartbeatMs = Math.max(PRESENCE_TICK_MS, answer.heartbeatMs)
      this.#deps.identified(answer.peers)
    } finally {
      if (this.#sendingFor === streamId) {
        this.#sendingFor = undefined
        this.#inFlight = []
      }
      if (!this.#closed) this.#after(delivered ? broadcasts : [], retryIn)
    }
  }

  /** The server shows tab `tab` in `room` no more. */
  #forget(tab: string, room: string): void {
    const shown = this.#shown.get(tab)
    shown?.delete(room)
    if (shown?.size === 0) this.#shown.delete(tab)
  }

  /** Tab `tab` was refused `room`: not asked for again, whatever the tab's next wish says, until it joins anew. */
  #refuse(tab: string, room: string, refusal: PresenceRefusal): void {
    this.#forget(tab, room)
    const wanted = this.#wanted.get(tab)
    if (wanted?.has(room) === true) this.#wanted.set(tab, new Map([...wanted].filter(([key]) => key !== room)))
    this.#deps.refused(tab, room, refusal)
  }

  /** After a request: its broadcasts count as sent, and the next request is scheduled (a retry, what changed meanwhile, or the heartbeat). */
  #after(delivered: ReadonlyArray<{ tab: string }>, retryIn: number | undefined): void {
    const counts = new Map<string, number>()
    for (const { tab } of delivered) counts.set(tab, (counts.get(tab) ?? 0) + 1)
    for (const [tab, count] of counts) this.#deps.sent(tab, count)
    if (retryIn !== undefined) this.#notBefore = performance.now() + retryIn
    if (this.#dueIn(performance.now()) < Number.POSITIVE_INFINITY) this.#schedule()
    else this.#beatLater()
  }

  /** While any tab is in a room, a request (maybe with no op) goes at least every heartbeat. */
  #beatLater(): void {
    if (this.#heartbeat !== undefined) this.#deps.timers.clearTimeout(this.#heartbeat)
    this.#heartbeat = undefined
    if (this.#wanted.size === 0 || this.#closed) return
    this.#heartbeat = this.#deps.timers.setTimeout(() => {
      this.#heartbeat = undefined
      void this.#send(false)
    }, this.#heartbeatMs)
  }

  /** Sends one request; its answer, or the error that refused it. */
  async #post(body: { streamId: string; ops: PresenceOp[] }, keepalive: boolean): Promise<PresenceAccepted | ZunoError> {
    const { url, fetch: fetchImpl, token, withCredentials } = this.#deps
    const headers: Record<string, string> = { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) }
    const credential = token?.()
    if (credential !== undefined) headers.authorization = `Bearer ${credential}`
    try {
      const response = await fetchImpl(`${url}${PATHS.presence}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        credentials: withCredentials ? 'include' : 'same-origin',
        ...(keepalive ? { keepalive: true } : {}),
        // One that never completes would hold every later request (and the heartbeat) back for good.
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      })
      const answer = (await response.json().catch(() => undefined)) as PresenceAccepted | ErrorBody | undefined
      if (response.ok && answer?.ok === true) return answer
      const error = answer?.ok === false ? answer : undefined
      const retryAfter = Number(response.headers.get('retry-after'))
      return new ZunoError(error?.error ?? `http_${response.status}`, error?.message ?? `The server answered ${response.status}`, retryAfter > 0 ? { retryAfter } : undefined)
    } catch (cause) {
      return new ZunoError('network', 'Could not reach the server to tell presence', { cause })
    }
  }
}
