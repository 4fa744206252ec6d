/**
 * The control path of open streams: `POST /subscribe` (start and stop following stores without a
 * new connection), `POST /presence` (the stream's tabs in rooms) and revalidation (stop carrying
 * what a principal may no longer read). A request may reach another instance than the stream's:
 * it goes there as a signal on the storage's bus, and the answer comes back the same way.
 */
import { ZunoError } from '../errors'
import { MAX_STORES_PER_STREAM, type PresenceOp, type PresenceRequest, STORE_KEY_PATTERN, STREAM_ID_PATTERN, type SubscribeRequest } from '../protocol'
import type { ServedUniverse } from './authoritativeUniverse'
import type { Hub, Stream } from './hub'
import type { PresenceOutcome, PresenceRooms } from './presence'
import type { InstanceSignal } from './signals'
import { encodeFollowedFrame, encodeRevokedFrame } from './sse'

/** How long a request routed to another instance waits for its answer before the stream counts as gone, ms. */
const ROUTED_ANSWER_MS = 3000

/** What {@link StreamControl} asks of its sync server. */
export interface StreamControlHost {
  readonly hub: Hub
  readonly universe: ServedUniverse
  readonly presence: PresenceRooms
  /** May the principal a stream was opened with read `storeKey`, by every rule? */
  mayRead(principal: unknown, storeKey: string): boolean
}

/** Applies control requests to this sync server's streams, and routes the others'. */
export class StreamControl {
  /** Per stream, the end of its control requests being applied: they take effect in the order they came. */
  readonly #applying = new Map<string, Promise<void>>()
  /** Requests routed to another instance, waiting for its answer, by request id. */
  readonly #routed = new Map<string, { settle: (answer: RoutedAnswer) => void }>()
  #nextRequest = 0
  /** How many revalidations this sync server has carried out: a stream checked before one is checked again as it opens. */
  revalidations = 0
  readonly #stopSignals: () => void

  constructor(
    /** This sync server's id: the first part of its streams' ids. */
    readonly serverId: string,
    readonly host: StreamControlHost,
  ) {
    this.#stopSignals = host.universe.onSignal((signal) => this.#heard(signal))
  }

  /**
   * Carries out `request` (already authorized) for `principalId`: here when this sync server holds
   * the stream, else on the instance that does. Resolves once the stores newly followed are on
   * the stream; throws `unknown_stream` when no instance holds it for this principal.
   */
  async subscribe(request: Required<SubscribeRequest>, principalId: string): Promise<void> {
    const server = serverOf(request.streamId)
    if (server === this.serverId) return this.#apply(request, principalId)
    const { streamId, follow, unfollow } = request
    await this.#route((requestId) => ({ type: 'subscribe', to: server, from: this.serverId, requestId, principal: principalId, streamId, follow, unfollow }))
  }

  /**
   * Carries out a checked `POST /presence` for `principalId` on the instance that holds the stream
   * (its heartbeat too, with no op). Resolves with each tab's peer id; throws `unknown_stream` when
   * no instance holds the stream for this principal.
   */
  /** Whether the stream `streamId` names is this sync server's (else a request for it goes to the instance that holds it). */
  holds(streamId: string): boolean {
    return serverOf(streamId) === this.serverId
  }

  async presence(request: PresenceRequest, principalId: string): Promise<PresenceOutcome> {
    const server = serverOf(request.streamId)
    if (server === this.serverId) return this.#presenceHere(request.streamId, principalId, request.ops)
    const { streamId, ops } = request
    const answer = await this.#route((requestId) => ({ type: 'presenceOps', to: server, from: this.serverId, requestId, principal: principalId, streamId, ops }))
    if (answer.presence === undefined) throw unknownStream()
    return answer.presence
  }

  /** Sends a request to the instance holding its stream and waits for the answer; throws its error, or `unknown_stream` past the wait. */
  async #route(signalOf: (requestId: string) => InstanceSignal): Promise<RoutedAnswer> {
    const requestId = `${this.serverId}.${++this.#nextRequest}`
    const answered = new Promise<RoutedAnswer>((resolve) => {
      const timer = setTimeout(() => settle({ error: unknownStream() }), ROUTED_ANSWER_MS)
      const settle = (answer: RoutedAnswer) => {
        clearTimeout(timer)
        this.#routed.delete(requestId)
        resolve(answer)
      }
      this.#routed.set(requestId, { settle })
    })
    await this.host.universe.signal(signalOf(requestId))
    const answer = await answered
    if (answer.error !== undefined) throw answer.error
    return answer
  }

  #presenceHere(streamId: string, principalId: string, ops: readonly PresenceOp[]): PresenceOutcome {
    // A stream that just ended still takes its tabs' leaves (a closing tab's goodbye may arrive after its stream's end).
    const ended = this.host.hub.stream(streamId) === undefined ? this.host.presence.endedStream(streamId, principalId) : undefined
    return this.host.presence.apply(ended ?? this.#streamOf(streamId, principalId), ops)
  }

  /** The open stream `streamId` of this sync server, if it is `principalId`'s; else `unknown_stream`. */
  #streamOf(streamId: string, principalId: string): Stream {
    const stream = this.host.hub.stream(streamId)
    // Another principal's stream is answered as no stream at all: its existence is not theirs to learn.
    if (stream === undefined || stream.principalId !== principalId) throw unknownStream()
    return stream
  }

  /** Asks the rules again for every open stream of `principalId` here, and revokes what they no longer allow. */
  revalidate(principalId: string): void {
    this.revalidations += 1
    const { hub } = this.host
    this.host.presence.revalidate(principalId)
    for (const stream of [...hub.streamsOf(principalId)]) {
      if (stream.storeKeys === undefined) {
        const changed = stream.readable?.recheck()
        if (changed === undefined) continue
        if (changed.revoked.length > 0) stream.send(encodeRevokedFrame(changed.revoked))
        // A store it may read now, on a stream of every store: its state as of now, then its changes
        // (the rights let them through only as the state is sent, in one tick, once it is in memory).
        if (changed.granted.length > 0) {
          const { granted } = changed
          const rights = stream.readable
          this.host.universe
            .hold(granted)
            .then((held) => {
              try {
                const allowed = rights?.grant(granted) ?? []
                if (allowed.length > 0) {
                  const { cursor, stores } = held.snapshot(allowed)
                  stream.send(encodeFollowedFrame(cursor, { stores }))
                }
              } finally {
                held.release()
              }
            })
            .catch((error: unknown) => {
              // Not read (or not shown): the stream ends, and its client's next connection brings them.
              console.error('[zuno] a store granted to an open stream could not be read; ending the stream', error)
              stream.drop()
            })
        }
        continue
      }
      const revoked = [...stream.storeKeys].filter((storeKey) => !this.host.mayRead(stream.principal, storeKey))
      if (revoked.length === 0) continue
      hub.unfollow(stream, revoked)
      stream.send(encodeRevokedFrame(revoked))
    }
  }

  /** Stops hearing signals and fails the requests still waiting for another instance. */
  close(): void {
    this.#stopSignals()
    for (const { settle } of [...this.#routed.values()]) settle({ error: unknownStream() })
  }

  /**
   * Changes what a stream of this sync server follows, after the requests for it that came before
   * (a follow waits for its stores to be read: an unfollow sent meanwhile must not be undone by it).
   */
  #apply(request: Required<SubscribeRequest>, principalId: string): Promise<void> {
    const { streamId } = request
    const applied = (this.#applying.get(streamId) ?? Promise.resolve()).then(() => this.#applyNow(request, principalId))
    const settled = applied.catch(() => {})
    this.#applying.set(streamId, settled)
    settled.then(() => {
      if (this.#applying.get(streamId) === settled) this.#applying.delete(streamId)
    })
    return applied
  }

  async #applyNow({ streamId, follow, unfollow }: Required<SubscribeRequest>, principalId: string): Promise<void> {
    this.#check(streamId, principalId, follow, unfollow)
    const stream = this.host.hub.stream(streamId)
    if (stream?.storeKeys === undefined) return
    this.host.hub.unfollow(stream, unfollow)
    const added = [...new Set(follow)].filter((storeKey) => !stream.storeKeys?.has(storeKey))
    if (added.length === 0) return
    // In memory first (a storage read lazily reads them now); then checked again, as things may
    // have changed during the read, and followed.
    const held = await this.host.universe.hold(added)
    try {
      this.#check(streamId, principalId, follow, [])
      const now = added.filter((storeKey) => !stream.storeKeys?.has(storeKey))
      if (now.length === 0) return
      // Taken and written in one tick with the follow itself: the next event the stream gets is the next one after this state.
      const { cursor, stores } = held.snapshot(now)
      this.host.hub.follow(stream, now, encodeFollowedFrame(cursor, { stores }))
    } finally {
      held.release()
    }
  }

  /** Throws unless the stream is open, the principal's, and may follow these stores. */
  #check(streamId: string, principalId: string, follow: readonly string[], unfollow: readonly string[]): void {
    const stream = this.#streamOf(streamId, principalId)
    // A stream of every store it may read follows them all already.
    if (stream.storeKeys === undefined) return
    // Checked before anything changes: a refused request does nothing.
    const dropped = new Set(unfollow)
    const kept = [...stream.storeKeys].filter((storeKey) => !dropped.has(storeKey)).length
    const added = [...new Set(follow)].filter((storeKey) => dropped.has(storeKey) || !stream.storeKeys?.has(storeKey))
    if (kept + added.length > MAX_STORES_PER_STREAM) {
      throw new ZunoError('too_many_stores', `A stream follows at most ${MAX_STORES_PER_STREAM} stores`)
    }
    // Asked again here, with the principal the stream holds: a revalidation may have come between
    // the check of the request (maybe on another instance) and now, and must not be undone by it.
    const refused = added.find((storeKey) => !this.host.mayRead(stream.principal, storeKey))
    if (refused !== undefined) throw new ZunoError('forbidden', `You may not read ${JSON.stringify(refused)}`)
  }

  #heard(signal: InstanceSignal): void {
    switch (signal.type) {
      case 'revalidate':
        this.revalidate(signal.principal)
        break
      case 'revalidateAll':
        for (const principalId of this.host.hub.principals()) this.revalidate(principalId)
        // Presence signals may have been lost too: every instance's peers, whole.
        this.host.presence.resync()
        break
      case 'presence':
      case 'presenceSync':
        this.host.presence.heard(signal)
        break
      case 'subscribe': {
        if (signal.to !== this.serverId) break
        const answer = (error: ZunoError | undefined) => {
          const answered: InstanceSignal = { type: 'subscribed', to: signal.from, requestId: signal.requestId }
          if (error !== undefined) answered.error = { code: error.code, message: error.message }
          this.host.universe.signal(answered).catch((cause: unknown) => console.error('[zuno] could not answer a routed subscribe', cause))
        }
        this.#apply(signal, signal.principal).then(
          () => answer(undefined),
          (caught: unknown) => answer(caught instanceof ZunoError ? caught : unknownStream()),
        )
        break
      }
      case 'presenceOps': {
        if (signal.to !== this.serverId) break
        let answer: InstanceSignal
        try {
          const presence = this.#presenceHere(signal.streamId, signal.principal, signal.ops)
          answer = { type: 'subscribed', to: signal.from, requestId: signal.requestId, presence }
        } catch (caught) {
          const error = caught instanceof ZunoError ? caught : unknownStream()
          answer = { type: 'subscribed', to: signal.from, requestId: signal.requestId, error: { code: error.code, message: error.message } }
        }
        this.host.universe.signal(answer).catch((cause: unknown) => console.error('[zuno] could not answer a routed presence request', cause))
        break
      }
      case 'subscribed': {
        if (signal.to !== this.serverId) break
        const error = signal.error && new ZunoError(signal.error.code, signal.error.message)
        this.#routed.get(signal.requestId)?.settle(error === undefined ? { presence: signal.presence } : { error })
        break
      }
    }
  }
}

/** What a routed request's answer brings back. */
interface RoutedAnswer {
  error?: ZunoError | undefined
  presence?: PresenceOutcome | undefined
}

/** The sync server that holds a stream: the first part of its id. */
function serverOf(streamId: string): string {
  return streamId.slice(0, streamId.indexOf('.'))
}

function unknownStream(): ZunoError {
  return new ZunoError('unknown_stream', 'No such stream is open: it ended, or it is not yours')
}

/** Checks a `POST /subscribe` body; throws `invalid_body`, `invalid_store_key` or `too_many_stores`. */
export function validateSubscribeRequest(value: unknown): Required<SubscribeRequest> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ZunoError('invalid_body', 'The body must be a JSON object')
  const { streamId, follow = [], unfollow = [] } = value as Record<string, unknown>
  if (typeof streamId !== 'string' || !STREAM_ID_PATTERN.test(streamId)) throw new ZunoError('invalid_body', '`streamId` must be the id a `hello` event gave')
  return { streamId, follow: storeList(follow, 'follow'), unfollow: storeList(unfollow, 'unfollow') }
}

function storeList(value: unknown, name: string): string[] {
  if (!Array.isArray(value)) throw new ZunoError('invalid_body', `\`${name}\` must be an array of store keys`)
  if (value.length > MAX_STORES_PER_STREAM) throw new ZunoError('too_many_stores', `A stream follows at most ${MAX_STORES_PER_STREAM} stores`)
  for (const key of value) {
    if (typeof key !== 'string' || !STORE_KEY_PATTERN.test(key)) {
      throw new ZunoError('invalid_store_key', `Invalid store key ${JSON.stringify(String(key).slice(0, 200))}`)
    }
  }
  return value as string[]
}
