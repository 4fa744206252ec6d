/**
 * Presence on a replica: the rooms this tab is in, with what the server streams of the others.
 * What the tabs want shown goes to the server through the leader tab's `PresenceSender`
 * (./presenceSender, loaded when a tab first joins a room).
 */
import { ZunoError } from '../errors'
import { DEFAULT_LIMITS, PRESENCE_LIMITS, type PresenceMessage, type PresenceRefusal } from '../protocol'

/** A peer in a room, as a replica shows it. */
export interface PresencePeer<P = unknown> {
  /** Stable for a tab and its principal, across reconnects and leader tabs. */
  readonly id: string
  /** The id of the principal the server authenticated (`''` when anonymous): not what the peer says of itself. */
  readonly principal: string
  /** Its presence value. */
  readonly state: P
}

/** Who sent a broadcast event. */
export interface BroadcastSender {
  /** The sender's peer id. */
  readonly id: string
  /** The id of the principal the server authenticated. */
  readonly principal: string
}

/**
 * This tab's presence in one room: its own value, the others', and events broadcast to the room.
 * Never logged or stored; a tab that closes or loses its connection leaves (docs/presence.md).
 */
export interface PresenceRoom<P = unknown> {
  /** The room: a store key the principal may read. */
  readonly room: string
  /** This tab's value in the room. */
  me(): P
  /** Replaces this tab's value (or updates it from the current one); the others see the latest, at most 20 times a second. */
  set(next: P | ((current: P) => P)): void
  /** Everyone else in the room, this browser's other tabs included, in the order they joined; the same array until it changes. */
  others(): readonly PresencePeer<P>[]
  /** Calls `listener` when `me()`, `others()` or `error()` changes; returns the function that stops it. */
  subscribe(listener: () => void): () => void
  /** Sends `data` (JSON, at most 2 KiB) to everyone else in the room; never kept, never replayed. Throws `presence_too_large` or `queue_full`. */
  broadcast(data: unknown): void
  /** Calls `listener` with each event the others broadcast to the room; returns the function that stops it. */
  onBroadcast(listener: (data: unknown, from: BroadcastSender) => void): () => void
  /** Why the server does not show this tab in the room (`forbidden`, `room_full`), if it does not. */
  error(): ZunoError | undefined
  /** Lets go of this handle; the tab leaves the room once every handle of it has. */
  leave(): void
}

/** What one tab wants the server to show: its value per room (JSON, measured once). */
export type TabPresence = ReadonlyMap<string, { state: unknown; json: string }>

const NOBODY: readonly PresencePeer[] = Object.freeze([])

/** Most events waiting to be sent, per replica, before `broadcast` throws `queue_full`. */
const MAX_QUEUED_BROADCASTS = 64

/** A room this tab is in. */
class JoinedRoom<P> {
  handles = 0
  state: P
  json: string
  /** Whether a join gave the value (a join without one, to watch the others, shows `null` until one does). */
  given: boolean
  /** This tab's peer id, once the server has said it. */
  selfId: string | undefined
  readonly peers = new Map<string, PresencePeer<P>>()
  othersCache: readonly PresencePeer<P>[] | undefined
  error: ZunoError | undefined
  readonly listeners = new Set<() => void>()
  readonly broadcastListeners = new Set<(data: unknown, from: BroadcastSender) => void>()

  constructor(
    readonly room: string,
    initial: P,
    given: boolean,
  ) {
    this.state = initial
    this.json = measure(initial, PRESENCE_LIMITS.maxStateBytes, 'A presence value')
    this.given = given
  }

  others(): readonly PresencePeer<P>[] {
    // Until the server has said which peer is this tab, the room could show it among the others
    // (its first event may overtake the answer that names it): nobody is shown for that moment.
    if (this.selfId === undefined) return NOBODY as readonly PresencePeer<P>[]
    this.othersCache ??= [...this.peers.values()].filter((peer) => peer.id !== this.selfId)
    return this.othersCache
  }

  changed(): void {
    this.othersCache = undefined
    callEach(this.listeners, (listener) => listener())
  }
}

/** What {@link PresenceRooms} tells the transport: this tab's wishes. */
export interface PresenceRoomsHost {
  /** This tab's value per room changed (a join, a `set`, a leave). */
  changed(rooms: TabPresence): void
  /** This tab broadcasts `data` to `room`, its `seq`-th event. */
  broadcast(room: string, data: unknown, seq: number): void
}

/** The rooms this tab is in, as the replica shows them. */
export class PresenceRooms {
  readonly #rooms = new Map<string, JoinedRoom<unknown>>()
  #host: PresenceRoomsHost | undefined
  #queued = 0
  /** This tab's last event's number: the server sends an event sent again (its answer lost) once. */
  #broadcastSeq = 0
  /** This tab's peer id, once the server has said it: the same in every room. */
  #selfId: string | undefined
  /** Rooms left lately, still kept current, for a join that comes back soon (a component remounted, a view switched). */
  readonly #lingering = new Map<string, JoinedRoom<unknown>>()
  /** The page is hidden away (unloading, or in the back-forward cache): this tab shows in no room meanwhile. */
  #hidden = false

  /** Where this tab's wishes go: the sender on a leader, the leader tab from a follower. */
  connect(host: PresenceRoomsHost): void {
    this.#host = host
    if (this.#rooms.size > 0) host.changed(this.wanted())
  }

  /** This tab's value per room. */
  wanted(): TabPresence {
    const wanted = new Map<string, { state: unknown; json: string }>()
    if (this.#hidden) return wanted
    for (const [room, joined] of this.#rooms) if (joined.error === undefined) wanted.set(room, { state: joined.state, json: joined.json })
    return wanted
  }

  /** The page went away (`pagehide`) or came back (`pageshow`): this tab leaves every room, or shows in them again. */
  hide(hidden: boolean): void {
    if (this.#hidden === hidden) return
    this.#hidden = hidden
    if (this.#rooms.size > 0) this.#host?.changed(this.wanted())
  }

  /**
   * Joins `room` with `initial` (or takes another handle of it, keeping its value). Without
   * `given`, the join only watches: the value is `null` until a join that gives one, or a `set`.
   */
  join<P>(room: string, initial: P, given = true): PresenceRoom<P> {
    let joined = this.#rooms.get(room) as JoinedRoom<P> | undefined
    if (joined === undefined) {
      // Left a moment ago: what it knows of the room is still right (the server may never have
      // heard of the leave, and then sends nothing new), so it is taken up again with the new value.
      const lingering = this.#lingering.get(room) as JoinedRoom<P> | undefined
      this.#lingering.delete(room)
      joined = lingering ?? new JoinedRoom(room, initial, given)
      if (lingering !== undefined) {
        joined.state = initial
        joined.json = measure(initial, PRESENCE_LIMITS.maxStateBytes, 'A presence value')
        joined.given = given
        joined.error = undefined
      }
      joined.selfId = this.#selfId
      this.#rooms.set(room, joined as JoinedRoom<unknown>)
      this.#host?.changed(this.wanted())
    } else if (given && !joined.given) {
      joined.given = true
      this.#handle(joined).set(initial)
    }
    joined.handles += 1
    return this.#handle(joined)
  }

  /** A `presence` event of the stream. */
  message(message: PresenceMessage): void {
    const joined = this.#rooms.get(message.room) ?? this.#lingering.get(message.room)
    if (joined === undefined) return
    let changed = false
    if (message.whole === true) {
      joined.peers.clear()
      changed = true
    }
    for (const peer of message.peers ?? []) {
      joined.peers.set(peer.id, { id: peer.id, principal: peer.principal, state: peer.state })
      changed = true
    }
    for (const id of message.left ?? []) changed = joined.peers.delete(id) || changed
    if (changed) joined.changed()
    for (const { from, principal, data } of message.broadcasts ?? []) {
      if (from === joined.selfId) continue
      callEach(joined.broadcastListeners, (listener) => listener(data, { id: from, principal }))
    }
  }

  /** This tab's peer id (the same in every room, for a principal). */
  identified(peerId: string): void {
    this.#selfId = peerId
    for (const joined of this.#rooms.values()) {
      if (joined.selfId === peerId) continue
      joined.selfId = peerId
      joined.changed()
    }
  }

  /** The server skipped this tab's ops in `room`: it is not shown there until it joins again. */
  refused(room: string, refusal: Pick<PresenceRefusal, 'error' | 'message'>): void {
    const joined = this.#rooms.get(room)
    if (joined === undefined) return
    joined.error = new ZunoError(refusal.error, refusal.message)
    joined.peers.clear()
    joined.changed()
    this.#host?.changed(this.wanted())
  }

  /** The principal may no longer read these rooms (the stream said `revoked`). */
  revoked(storeKeys: readonly string[]): void {
    for (const room of storeKeys) if (this.#rooms.has(room)) this.refused(room, { error: 'forbidden', message: `You may no longer read ${JSON.stringify(room)}` })
  }

  /** A broadcast of this tab went out (or was dropped with its request): room for another. */
  sent(count: number | undefined): void {
    this.#queued = count === undefined ? 0 : Math.max(0, this.#queued - count)
  }

  #linger(joined: JoinedRoom<unknown>): void {
    this.#lingering.delete(joined.room)
    this.#lingering.set(joined.room, joined)
    // The oldest goes first: as many as a tab may be in.
    if (this.#lingering.size > PRESENCE_LIMITS.maxRoomsPerTab) this.#lingering.delete(this.#lingering.keys().next().value as string)
  }

  #handle<P>(joined: JoinedRoom<P>): PresenceRoom<P> {
    let left = false
    const rooms = this
    return {
      room: joined.room,
      me: () => joined.state,
      set(next) {
        if (left) return
        const state = typeof next === 'function' ? (next as (current: P) => P)(joined.state) : next
        const json = measure(state, PRESENCE_LIMITS.maxStateBytes, 'A presence value')
        joined.state = state
        joined.given = true
        if (json === joined.json) return
        joined.json = json
        callEach(joined.listeners, (listener) => listener())
        if (joined.error === undefined) rooms.#host?.changed(rooms.wanted())
      },
      others: () => joined.others(),
      subscribe(listener) {
        joined.listeners.add(listener)
        return () => {
          joined.listeners.delete(listener)
        }
      },
      broadcast(data) {
        if (left) return
        if (measure(data, PRESENCE_LIMITS.maxBroadcastBytes, 'A broadcast event') === 'null') throw new ZunoError('invalid_body', 'A broadcast event is a JSON value other than null')
        if (rooms.#queued >= MAX_QUEUED_BROADCASTS) throw new ZunoError('queue_full', `${MAX_QUEUED_BROADCASTS} broadcast events already wait to be sent`)
        rooms.#queued += 1
        rooms.#host?.broadcast(joined.room, data, ++rooms.#broadcastSeq)
      },
      onBroadcast(listener) {
        joined.broadcastListeners.add(listener)
        return () => {
          joined.broadcastListeners.delete(listener)
        }
      },
      error: () => joined.error,
      leave() {
        if (left) return
        left = true
        joined.handles -= 1
        if (joined.handles > 0) return
        rooms.#rooms.delete(joined.room)
        rooms.#linger(joined as JoinedRoom<unknown>)
        rooms.#host?.changed(rooms.wanted())
      },
    }
  }
}

/** How deep a value may nest: the request puts it three levels down (the body, its `ops`, the op) in what the server reads. */
const MAX_VALUE_DEPTH = DEFAULT_LIMITS.maxDepth - 3

/**
 * `value` as the server will read it (JSON; `undefined`, or anything JSON has no text for, is
 * `null`), within `most` bytes and the depth a server takes by default; throws
 * `presence_too_large` or `too_deep` past them: checked here, so the server never has to refuse it.
 */
function measure(value: unknown, most: number, what: string): string {
  const json = JSON.stringify(value) ?? 'null'
  if (json.length > most || new TextEncoder().encode(json).byteLength > most) throw new ZunoError('presence_too_large', `${what} may take at most ${most} bytes of JSON`)
  if (depthOf(json) > MAX_VALUE_DEPTH) throw new ZunoError('too_deep', `${what} may nest at most ${MAX_VALUE_DEPTH} levels of arrays and objects`)
  return json
}

/** How deep `json` nests arrays and objects. */
function depthOf(json: string): number {
  let depth = 0
  let deepest = 0
  let inString = false
  for (let i = 0; i < json.length; i++) {
    const char = json.charCodeAt(i)
    if (inString) {
      if (char === 0x5c) i++ // an escape: the next character is not the string's end
      else if (char === 0x22) inString = false
    } else if (char === 0x22) inString = true
    else if (char === 0x5b || char === 0x7b) deepest = Math.max(deepest, ++depth)
    else if (char === 0x5d || char === 0x7d) depth--
  }
  return deepest
}

/** Calls each listener; one that throws is reported, and the others still hear. */
function callEach<L>(listeners: Iterable<L>, call: (listener: L) => void): void {
  for (const listener of [...listeners]) {
    try {
      call(listener)
    } catch (error) {
      console.error('[zuno] a presence listener threw; the others still run', error)
    }
  }
}
