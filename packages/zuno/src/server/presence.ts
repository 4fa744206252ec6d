/**
 * Presence: who is in a room (any store key) and what they broadcast to it. Never logged,
 * versioned or stored. Each sync server holds the peers its own streams carry, mirrors the other
 * instances' from their signals on the storage's bus, and sends every room's changes out at most
 * once a tick, coalesced (a peer's latest value wins), each as one frame encoded once for all the
 * room's streams.
 */
import { ZunoError } from '../errors'
import {
  DEFAULT_LIMITS,
  PRESENCE_LIMITS,
  type PresenceAccepted,
  type PresenceBroadcast,
  type PresenceMessage,
  type PresenceOp,
  type PresencePeer,
  type PresenceRefusal,
  type PresenceRequest,
  STORE_KEY_PATTERN,
  STREAM_ID_PATTERN,
  TAB_KEY_PATTERN,
  writerTagOfDigest,
} from '../protocol'
import { sha256 } from '../sha256'
import { utf8Bytes } from './bytes'
import { BoundedMap } from './boundedMap'
import { findNonJson } from './json'
import type { Stream } from './hub'
import { encodePresenceFrame, encodeRevokedFrame } from './sse'

/** Presence options of a sync server. */
export interface PresenceOptions {
  /** Most peers in one room, on every instance together; a join past it is refused `room_full`. Default 1,000. */
  maxPeersPerRoom?: number
  /**
   * A room's changes go out at most once per tick, coalesced (each peer's latest value), ms. The
   * first change after a quiet tick goes at the end of the event loop's turn; the rest wait for the
   * tick. Longer ticks make fewer, larger frames for rooms of many busy peers, at the price of
   * latency. Default 5.
   */
  tickMs?: number
  /**
   * A stream's tabs leave once it has not sent `POST /presence` (an op or a heartbeat) for this
   * long, ms: what bounds a lost connection the server cannot see (a half-open socket). The peers of
   * an instance not heard from for as long leave too (a crash): give every instance the same value.
   * Default 15,000.
   */
  timeoutMs?: number
  /**
   * A stream that ends: its tabs stay this long for another stream to take them over (the browser's
   * next leader tab, a reconnect), then leave, ms. A tab that closes says so and leaves at once. Default 3,000.
   */
  graceMs?: number
}

/** What presence asks of its sync server. */
export interface PresenceHost {
  /** This sync server's id: the first part of its streams' ids, and how the others name it. */
  readonly serverId: string
  /** May the principal a stream was opened with read `room` (the store key), by every rule? */
  mayRead(principal: unknown, room: string): boolean
  /** Tells the other instances (the storage's bus); they call {@link PresenceRooms.heard} with it. */
  publish(signal: PresenceSignal): void
}

/** What presence tells the other instances. */
export type PresenceSignal =
  /** Changes to rooms made by this sync server's peers in one tick (or, with `whole`, all of its peers in those rooms). */
  | {
      /** The kind of signal. */
      type: 'presence'
      /** The sync server. */
      from: string
      /** One message per room. */
      rooms: PresenceMessage[]
      /** `rooms` is every room the sender has peers in, each whole: replace what you had of it. */
      whole?: true
    }
  /** A sync server that just started, or lost signals, asks the others for all of their peers. */
  | {
      /** The kind of signal. */
      type: 'presenceSync'
      /** The sync server asking. */
      from: string
    }

/** A peer: one tab in one room. */
interface Peer {
  readonly id: string
  /** For this instance's peer: its tab's key. */
  readonly tab: string | undefined
  readonly principal: string
  state: unknown
  /** `JSON.stringify(state)`: a value sent again unchanged goes out to nobody. */
  stateJson: string
  readonly room: Room
  /** The stream of this instance that carries it; `undefined` for another instance's peer. */
  carrier: Carrier | undefined
  /** For another instance's peer: that instance (the last to say it carries the peer: a tab's stream may move). */
  instance: string | undefined
}

/** How many of a peer's event numbers below its highest are remembered: events may come back out of order after a reconnect, a replica holds at most 64. */
const SEQ_WINDOW = 64

/** The event numbers a peer has sent to a room: the highest, and which of the {@link SEQ_WINDOW} below it (bit i: highest − 1 − i). */
interface SeenEvents {
  highest: number
  below: bigint
}

/** A room as this sync server knows it: every instance's peers, and this one's streams in it. */
interface Room {
  readonly key: string
  readonly peers: Map<string, Peer>
  /** This instance's streams with peers here, each with how many. */
  readonly streams: Map<Carrier, number>
  /** Peers changed or joined since the last tick, by id (their latest value is sent). */
  readonly changed: Set<string>
  readonly left: Set<string>
  /** Events to send at the next tick, each marked when one of this instance's peers sent it (those go to the others too). */
  readonly broadcasts: Array<{ broadcast: PresenceBroadcast; local: boolean }>
  /** This instance's streams a tab of which joined since the last tick: each gets the room whole at it. */
  readonly wholeFor: Set<Carrier>
}

/** A stream of this sync server that carries tabs' presence. */
interface Carrier {
  stream: Stream
  /** Its peers, by `tab key + room`. */
  readonly peers: Map<string, Peer>
  /** Its tabs, each with the number of rooms it is in. */
  readonly tabs: Map<string, number>
  /** Peer ids of the tabs its requests named, by tab key: a digest per tab, not per op (bounded by {@link MAX_CACHED_IDS}). */
  readonly ids: Map<string, string>
  /** When it last sent `POST /presence`. */
  heardAt: number
  /** When its stream ended: its peers leave at `graceMs` after, unless another stream takes them. */
  endedAt: number | undefined
}

/** What a `POST /presence` did: the body of its answer, but for `ok`. */
export type PresenceOutcome = Omit<PresenceAccepted, 'ok'>

/** How often peers are checked for silence and ended streams, ms. */
const SWEEP_MS = 1000

/** Most peer ids a stream keeps computed: twice the tabs it may carry (requests naming more tabs start it afresh). */
const MAX_CACHED_IDS = 2 * PRESENCE_LIMITS.maxTabsPerStream


/** The presence of a sync server's streams, and of the other instances' as their signals tell. */
export class PresenceRooms {
  readonly #host: PresenceHost
  readonly #maxPeersPerRoom: number
  readonly #tickMs: number
  readonly #timeoutMs: number
  readonly #graceMs: number
  /** How often this sync server, with peers, tells the others it is alive: three times per `timeoutMs`, after which they let its peers go. */
  readonly #aliveMs: number
  readonly #now: () => number
  readonly #rooms = new Map<string, Room>()
  /** Streams that carry peers (or did, within the grace), by stream id. */
  readonly #carriers = new Map<string, Carrier>()
  /** A peer's carrier, by peer id: how a new stream takes a peer over. */
  readonly #peersById = new Map<string, Map<string, Peer>>()
  /** Rooms with changes to send at the next tick. */
  readonly #dirty = new Set<Room>()
  /**
   * The event numbers each peer has sent to each room, by peer id and room: kept apart from the
   * peer, which a sweep or a leave ends while its tab may still send an event again. Bounded: the
   * oldest are forgotten first.
   */
  readonly #seenEvents = new BoundedMap<string, SeenEvents>(100_000)
  /** The other instances, by id, and when each was last heard. */
  readonly #instances = new Map<string, number>()
  /** Cancels the flush that is due, if one is. */
  #tick: (() => void) | undefined
  #lastTick = 0
  #sweep: ReturnType<typeof setInterval> | undefined
  #lastAlive = 0
  /**
   * Whether another instance was ever heard. Until then a tick's changes are not published: a lone
   * instance would only hear them back. Its peers, whole, still go to whoever asks (`presenceSync`)
   * and with every sign of life, and it tells them all once it first hears another.
   */
  #othersHeard = false
  #closed = false

  /** `now` is monotonic: a step of the wall clock neither stalls the ticks nor sweeps live peers. */
  constructor(host: PresenceHost, options: PresenceOptions = {}, now: () => number = () => performance.now()) {
    this.#host = host
    this.#maxPeersPerRoom = options.maxPeersPerRoom ?? 1000
    this.#tickMs = options.tickMs ?? 5
    this.#timeoutMs = options.timeoutMs ?? 15_000
    this.#graceMs = options.graceMs ?? 3000
    this.#aliveMs = this.#timeoutMs / 3
    this.#now = now
  }

  /**
   * Asks the other instances for their peers (they answer with them, whole). Called once the sync
   * server hears signals: on a bus within one process the answer comes back before `publish` returns.
   */
  start(): void {
    this.#host.publish({ type: 'presenceSync', from: this.#host.serverId })
  }

  /**
   * Applies a checked `POST /presence` of `stream` (this sync server's, the principal's), op by op.
   * An op the rules or the bounds refuse is skipped, and its room named in `refused` (the first
   * reason each): one room being full or forbidden holds up no other room's presence.
   */
  apply(stream: Stream, ops: readonly PresenceOp[]): PresenceOutcome {
    const carrier = this.#carrierOf(stream, this.#now())
    const peers: Record<string, string> = {}
    let refused: Record<string, PresenceRefusal> | undefined
    let skipped = false
    for (const op of ops) {
      const id = carrier.ids.get(op.tab) ?? this.#idOf(carrier, op.tab)
      peers[op.tab] = id
      // An ended stream's tabs only leave: none joins, changes or broadcasts on it.
      if (carrier.endedAt !== undefined && op.leave !== true) {
        skipped = true
        continue
      }
      const refusal = this.#refusal(carrier, op, id)
      if (refusal !== undefined) {
        refused ??= {}
        // Own properties only: a room may be named `constructor` or `toString`.
        const named = Object.hasOwn(refused, op.room) ? refused[op.room] : undefined
        if (named === undefined) refused[op.room] = { error: refusal.code, message: refusal.message, tabs: [op.tab] }
        else if (!named.tabs.includes(op.tab)) named.tabs.push(op.tab)
        continue
      }
      if (op.leave === true) this.#leave(carrier, op.tab, op.room)
      else if (op.broadcast !== undefined) {
        // Sent again after its answer was lost: it went out the first time.
        if (op.seq !== undefined && !this.#firstTime(id, op.room, op.seq)) continue
        this.#broadcast(this.#roomOf(op.room), { from: id, principal: stream.principalId, data: op.broadcast }, true)
      }
      else this.#set(carrier, op.tab, op.room, id, op.state ?? null)
    }
    this.#schedule()
    // Its leaves went; the rest must go on the tab's next stream, which this answer asks for.
    if (skipped) throw new ZunoError('unknown_stream', 'The stream has ended: only its tabs\' leaves were taken')
    // Three heartbeats a timeout: two may be lost before the tabs are.
    const heartbeatMs = Math.floor(this.#timeoutMs / 3)
    return refused === undefined ? { peers, heartbeatMs } : { peers, refused, heartbeatMs }
  }

  /** A stream of `principalId` here that ended within the grace, its peers still shown: its tabs may still leave. */
  endedStream(streamId: string, principalId: string): Stream | undefined {
    const carrier = this.#carriers.get(streamId)
    return carrier?.endedAt !== undefined && carrier.stream.principalId === principalId ? carrier.stream : undefined
  }

  /** A stream of this sync server ended: its peers wait `graceMs` for another stream, then leave. */
  ended(stream: Stream): void {
    const carrier = this.#carriers.get(stream.streamId)
    if (carrier === undefined || carrier.stream !== stream) return
    if (carrier.peers.size === 0) {
      this.#carriers.delete(stream.streamId)
      return
    }
    carrier.endedAt = this.#now()
  }

  /** Asks the rules again for a principal's streams here: their peers leave the rooms they may no longer read, and each stream hears `revoked`. */
  revalidate(principalId: string): void {
    for (const carrier of [...this.#carriers.values()]) {
      if (carrier.stream.principalId !== principalId) continue
      const refused = new Set<string>()
      for (const [, peer] of carrier.peers) if (!this.#host.mayRead(carrier.stream.principal, peer.room.key)) refused.add(peer.room.key)
      if (refused.size === 0) continue
      for (const [key, peer] of [...carrier.peers]) {
        if (refused.has(peer.room.key)) this.#remove(peer, key)
      }
      if (carrier.endedAt === undefined) carrier.stream.send(encodeRevokedFrame([...refused]))
    }
    this.#schedule()
  }

  /** A signal from another instance (this one's own are ignored). */
  heard(signal: PresenceSignal): void {
    if (signal.from === this.#host.serverId || this.#closed) return
    this.#instances.set(signal.from, this.#now())
    if (!this.#othersHeard) {
      this.#othersHeard = true
      // What it missed while this one published nothing (a presenceSync is answered just below).
      if (signal.type !== 'presenceSync') this.#publishWhole()
    }
    if (signal.type === 'presenceSync') {
      this.#lastAlive = 0
      this.#publishWhole()
      return
    }
    if (signal.whole === true) {
      // All of the sender's peers: those not named have left.
      const named = new Set(signal.rooms.map((message) => message.room))
      for (const room of this.#rooms.values()) {
        if (named.has(room.key)) continue
        for (const peer of [...room.peers.values()]) if (peer.instance === signal.from) this.#removeRemote(peer)
      }
    }
    for (const message of signal.rooms) this.#heardRoom(signal.from, message, signal.whole === true)
    this.#startSweeping()
    this.#schedule()
  }

  /** Signals may have been lost (the bus reconnected): asks the others for their peers, and tells them this one's. */
  resync(): void {
    this.#host.publish({ type: 'presenceSync', from: this.#host.serverId })
    this.#publishWhole()
  }

  /** Stops the tick and the sweep; the streams' peers go with the sync server. */
  close(): void {
    this.#closed = true
    this.#tick?.()
    clearInterval(this.#sweep)
  }

  /** Whether peer `id` sends event `seq` to `room` for the first time (and remembers that it did): an anti-replay window. */
  #firstTime(id: string, room: string, seq: number): boolean {
    const key = `${id} ${room}`
    const seen = this.#seenEvents.get(key)
    if (seen === undefined) {
      this.#seenEvents.set(key, { highest: seq, below: 0n })
      return true
    }
    if (seq > seen.highest) {
      const shift = seq - seen.highest
      // The old highest becomes bit shift − 1; bits pushed past the window are forgotten.
      seen.below = shift > SEQ_WINDOW ? 0n : ((seen.below << BigInt(shift)) | (1n << BigInt(shift - 1))) & ((1n << BigInt(SEQ_WINDOW)) - 1n)
      seen.highest = seq
      return true
    }
    const back = seen.highest - seq
    // Too old to tell: taken as had (a replica holds fewer unsent events than the window).
    if (back === 0 || back > SEQ_WINDOW) return false
    const bit = 1n << BigInt(back - 1)
    if ((seen.below & bit) !== 0n) return false
    seen.below |= bit
    return true
  }

  #carrierOf(stream: Stream, now: number): Carrier {
    let carrier = this.#carriers.get(stream.streamId)
    if (carrier === undefined) {
      carrier = { stream, peers: new Map(), tabs: new Map(), ids: new Map(), heardAt: now, endedAt: undefined }
      this.#carriers.set(stream.streamId, carrier)
      this.#startSweeping()
    }
    carrier.heardAt = now
    return carrier
  }

  /** A tab's peer id, computed once per stream: the principal is the stream's, so the digest stays what it was. */
  #idOf(carrier: Carrier, tab: string): string {
    const id = peerIdOf(carrier.stream.principalId, tab)
    if (carrier.ids.size >= MAX_CACHED_IDS) carrier.ids.clear()
    carrier.ids.set(tab, id)
    return id
  }

  /** Why `op` may not be applied now, if it may not: the rules (asked with the stream's principal), membership, the bounds. */
  #refusal(carrier: Carrier, op: PresenceOp, id: string): ZunoError | undefined {
    const { stream } = carrier
    if (op.leave === true) return undefined
    if (!this.#host.mayRead(stream.principal, op.room)) return new ZunoError('forbidden', `You may not read ${JSON.stringify(op.room)}`)
    const member = carrier.peers.has(op.tab + op.room)
    if (op.broadcast !== undefined) return member ? undefined : new ZunoError('invalid_body', `A tab broadcasts only to a room it is in (${JSON.stringify(op.room)})`)
    if (member) return undefined
    if ((carrier.tabs.get(op.tab) ?? 0) >= PRESENCE_LIMITS.maxRoomsPerTab) return new ZunoError('room_full', `A tab is in at most ${PRESENCE_LIMITS.maxRoomsPerTab} rooms`)
    if (!carrier.tabs.has(op.tab) && carrier.tabs.size >= PRESENCE_LIMITS.maxTabsPerStream) {
      return new ZunoError('room_full', `A stream carries at most ${PRESENCE_LIMITS.maxTabsPerStream} tabs`)
    }
    // A peer another stream carried (a new leader tab) is taken over, not added.
    if (this.#peersById.get(id)?.has(op.room) === true) return undefined
    if ((this.#rooms.get(op.room)?.peers.size ?? 0) >= this.#maxPeersPerRoom) {
      return new ZunoError('room_full', `The room ${JSON.stringify(op.room)} has ${this.#maxPeersPerRoom} peers already`)
    }
    return undefined
  }

  #roomOf(key: string): Room {
    let room = this.#rooms.get(key)
    if (room === undefined) {
      room = { key, peers: new Map(), streams: new Map(), changed: new Set(), left: new Set(), broadcasts: [], wholeFor: new Set() }
      this.#rooms.set(key, room)
    }
    return room
  }

  #set(carrier: Carrier, tab: string, roomKey: string, id: string, state: unknown): void {
    const stateJson = JSON.stringify(state)
    const key = tab + roomKey
    let peer = carrier.peers.get(key)
    if (peer === undefined) {
      const room = this.#roomOf(roomKey)
      const carried = this.#peersById.get(id)?.get(roomKey)
      if (carried?.carrier !== undefined && carried.carrier !== carrier) {
        // Taken over from the stream that carried it: the room sees a change only if the value changed.
        this.#detach(carried.carrier, key, carried)
        peer = carried
      } else {
        peer = { id, tab, principal: carrier.stream.principalId, state, stateJson: '', room, carrier: undefined, instance: undefined }
        let rooms = this.#peersById.get(id)
        if (rooms === undefined) this.#peersById.set(id, (rooms = new Map()))
        rooms.set(roomKey, peer)
        room.peers.set(id, peer)
        room.left.delete(id)
      }
      peer.carrier = carrier
      carrier.peers.set(key, peer)
      carrier.tabs.set(tab, (carrier.tabs.get(tab) ?? 0) + 1)
      room.streams.set(carrier, (room.streams.get(carrier) ?? 0) + 1)
      // A tab that joins has nothing of the room yet, and its stream's other tabs cannot hand it what
      // they hold: the stream gets the room whole at the next tick (once however many tabs join).
      room.wholeFor.add(carrier)
      this.#dirty.add(room)
    }
    if (peer.stateJson === stateJson) return
    this.#assign(peer, state, stateJson)
    peer.room.changed.add(id)
    this.#dirty.add(peer.room)
  }

  #assign(peer: Peer, state: unknown, stateJson: string): void {
    peer.state = state
    peer.stateJson = stateJson
    peer.room.changed.add(peer.id)
    this.#dirty.add(peer.room)
  }

  #leave(carrier: Carrier, tab: string, roomKey: string): void {
    const key = tab + roomKey
    const peer = carrier.peers.get(key)
    if (peer !== undefined) this.#remove(peer, key)
  }

  /** Takes a peer off its carrier (and the carrier off the room, with its last peer there). */
  #detach(carrier: Carrier, key: string, peer: Peer): void {
    carrier.peers.delete(key)
    const tab = peer.tab as string
    const rooms = (carrier.tabs.get(tab) ?? 1) - 1
    if (rooms === 0) carrier.tabs.delete(tab)
    else carrier.tabs.set(tab, rooms)
    const streamPeers = (peer.room.streams.get(carrier) ?? 1) - 1
    if (streamPeers === 0) peer.room.streams.delete(carrier)
    else peer.room.streams.set(carrier, streamPeers)
    if (carrier.peers.size === 0 && carrier.endedAt !== undefined) this.#carriers.delete(carrier.stream.streamId)
  }

  /** A peer this instance carried is now another instance's: it stays in the room, as theirs. */
  #handOver(peer: Peer, instance: string): void {
    const carrier = peer.carrier as Carrier
    this.#detach(carrier, (peer.tab as string) + peer.room.key, peer)
    peer.carrier = undefined
    peer.instance = instance
    const rooms = this.#peersById.get(peer.id)
    rooms?.delete(peer.room.key)
    if (rooms?.size === 0) this.#peersById.delete(peer.id)
  }

  /** A local peer leaves its room. */
  #remove(peer: Peer, key: string): void {
    if (peer.carrier !== undefined) this.#detach(peer.carrier, key, peer)
    peer.carrier = undefined
    const rooms = this.#peersById.get(peer.id)
    rooms?.delete(peer.room.key)
    if (rooms?.size === 0) this.#peersById.delete(peer.id)
    this.#gone(peer)
  }

  /** Another instance's peer leaves. */
  #removeRemote(peer: Peer): void {
    this.#gone(peer)
  }

  #gone(peer: Peer): void {
    const { room } = peer
    room.peers.delete(peer.id)
    room.changed.delete(peer.id)
    room.left.add(peer.id)
    this.#dirty.add(room)
  }

  #broadcast(room: Room, broadcast: PresenceBroadcast, local: boolean): void {
    room.broadcasts.push({ broadcast, local })
    this.#dirty.add(room)
  }

  /** What another instance's peers did in a room. */
  #heardRoom(instance: string, message: PresenceMessage, whole: boolean): void {
    if (typeof message?.room !== 'string' || !STORE_KEY_PATTERN.test(message.room)) return
    const known = this.#rooms.get(message.room)
    // Leaves and events for a room nobody here is in: nobody to forget, nobody to tell (and no empty room kept).
    if (known === undefined && (message.peers === undefined || message.peers.length === 0)) return
    const room = known ?? this.#roomOf(message.room)
    const named = new Set<string>()
    for (const { id, principal, state } of message.peers ?? []) {
      named.add(id)
      let peer = room.peers.get(id)
      if (peer === undefined) {
        peer = { id, tab: undefined, principal, state, stateJson: '', room, carrier: undefined, instance }
        room.peers.set(id, peer)
        room.left.delete(id)
      } else if (peer.carrier !== undefined) {
        // Carried here by a live stream (its tab's new leader connected to this instance): this one speaks for it.
        if (peer.carrier.endedAt === undefined) continue
        // Carried by a stream of this instance that ended: its tab's next stream is on that instance,
        // which speaks for it now (no leave when this one's grace ends).
        this.#handOver(peer, instance)
      } else peer.instance = instance // its tab's stream moved between other instances
      const stateJson = JSON.stringify(state)
      if (peer.stateJson !== stateJson) this.#assign(peer, state, stateJson)
    }
    if (whole) {
      for (const peer of [...room.peers.values()]) if (peer.instance === instance && !named.has(peer.id)) this.#removeRemote(peer)
    }
    for (const id of message.left ?? []) {
      const peer = room.peers.get(id)
      if (peer?.instance === instance) this.#removeRemote(peer)
    }
    for (const broadcast of message.broadcasts ?? []) this.#broadcast(room, broadcast, false)
  }

  /** Sends the dirty rooms at once if the last tick was a tick ago, else at the end of this one. */
  #schedule(): void {
    if (this.#dirty.size === 0 || this.#tick !== undefined || this.#closed) return
    const wait = Math.max(0, this.#lastTick + this.#tickMs - this.#now())
    if (wait > 0) {
      const timer = setTimeout(() => this.#flush(), wait)
      this.#tick = () => clearTimeout(timer)
    } else {
      // At the end of this turn of the event loop: every request read in it goes in the one frame.
      const immediate = setImmediate(() => this.#flush())
      this.#tick = () => clearImmediate(immediate)
    }
  }

  #flush(): void {
    this.#tick = undefined
    this.#lastTick = this.#now()
    const mine: PresenceMessage[] = []
    for (const room of this.#dirty) {
      if (room.wholeFor.size > 0) {
        // Encoded once a tick however many tabs joined: a request of joins and leaves cannot make the server encode the room again and again.
        const whole = this.#wholeFrame(room)
        for (const carrier of room.wholeFor) if (carrier.endedAt === undefined && room.streams.has(carrier)) carrier.stream.send(whole)
        room.wholeFor.clear()
      }
      const message: PresenceMessage = { room: room.key }
      const own: PresenceMessage = { room: room.key }
      if (room.changed.size > 0) {
        const peers: PresencePeer[] = []
        const ownPeers: PresencePeer[] = []
        for (const id of room.changed) {
          const peer = room.peers.get(id)
          if (peer === undefined) continue
          const shown = { id, principal: peer.principal, state: peer.state }
          peers.push(shown)
          if (peer.instance === undefined) ownPeers.push(shown)
        }
        if (peers.length > 0) message.peers = peers
        if (ownPeers.length > 0) own.peers = ownPeers
      }
      if (room.left.size > 0) message.left = own.left = [...room.left]
      if (room.broadcasts.length > 0) {
        message.broadcasts = room.broadcasts.map(({ broadcast }) => broadcast)
        const ownBroadcasts = room.broadcasts.filter(({ local }) => local).map(({ broadcast }) => broadcast)
        if (ownBroadcasts.length > 0) own.broadcasts = ownBroadcasts
      }
      room.changed.clear()
      room.left.clear()
      room.broadcasts.length = 0
      if (own.peers !== undefined || own.left !== undefined || own.broadcasts !== undefined) mine.push(own)
      if (room.streams.size > 0 && (message.peers !== undefined || message.left !== undefined || message.broadcasts !== undefined)) {
        // One frame for every stream in the room: encoded once.
        const frame = encodePresenceFrame(message)
        for (const carrier of room.streams.keys()) if (carrier.endedAt === undefined) carrier.stream.send(frame)
      }
      if (room.peers.size === 0 && room.streams.size === 0) this.#rooms.delete(room.key)
    }
    this.#dirty.clear()
    if (mine.length > 0 && this.#othersHeard) {
      this.#lastAlive = this.#lastTick
      this.#host.publish({ type: 'presence', from: this.#host.serverId, rooms: mine })
    }
  }

  /** All of this instance's peers, room by room, whole: the answer to `presenceSync`, and the periodic sign of life. */
  #publishWhole(): void {
    const rooms = new Map<string, PresencePeer[]>()
    for (const carrier of this.#carriers.values()) {
      for (const peer of carrier.peers.values()) {
        let peers = rooms.get(peer.room.key)
        if (peers === undefined) rooms.set(peer.room.key, (peers = []))
        peers.push({ id: peer.id, principal: peer.principal, state: peer.state })
      }
    }
    this.#lastAlive = this.#now()
    this.#host.publish({ type: 'presence', from: this.#host.serverId, whole: true, rooms: [...rooms].map(([room, peers]) => ({ room, peers })) })
  }

  #wholeFrame(room: Room): Uint8Array {
    const peers: PresencePeer[] = []
    for (const peer of room.peers.values()) peers.push({ id: peer.id, principal: peer.principal, state: peer.state })
    return encodePresenceFrame({ room: room.key, whole: true, peers })
  }

  #startSweeping(): void {
    if (this.#sweep !== undefined || this.#closed) return
    this.#sweep = setInterval(() => this.#sweepNow(), SWEEP_MS)
    ;(this.#sweep as { unref?: () => void }).unref?.()
  }

  /** Peers of silent streams, of streams ended past the grace, and of silent instances leave. */
  #sweepNow(): void {
    const now = this.#now()
    for (const carrier of [...this.#carriers.values()]) {
      const silent = now - carrier.heardAt > this.#timeoutMs
      const ended = carrier.endedAt !== undefined && now - carrier.endedAt > this.#graceMs
      if (!silent && !ended) continue
      const shown = carrier.peers.size > 0
      for (const [key, peer] of [...carrier.peers]) this.#remove(peer, key)
      this.#carriers.delete(carrier.stream.streamId)
      // Silent but still open, with tabs shown (its requests fail, its page's timers sleep): the
      // stream ends, and its client's next one tells its tabs again, rather than believe it is shown
      // when it is not. A stream whose tabs all left owes no heartbeat: it stays.
      if (silent && !ended && shown) carrier.stream.drop()
    }
    for (const [instance, heardAt] of [...this.#instances]) {
      if (now - heardAt <= this.#timeoutMs) continue
      this.#instances.delete(instance)
      for (const room of this.#rooms.values()) for (const peer of [...room.peers.values()]) if (peer.instance === instance) this.#removeRemote(peer)
    }
    if (this.#carriers.size > 0 && now - this.#lastAlive >= this.#aliveMs) this.#publishWhole()
    this.#schedule()
    if (this.#carriers.size === 0 && this.#instances.size === 0) {
      clearInterval(this.#sweep)
      this.#sweep = undefined
    }
  }
}

/** A tab's peer id: a digest of its principal and its key, so the key never leaves the tab's own requests. */
export function peerIdOf(principalId: string, tab: string): string {
  return writerTagOfDigest(sha256(utf8Bytes(`${principalId}\n${tab}`)))
}

/** Checks a `POST /presence` body; throws `invalid_body`, `invalid_store_key` or `presence_too_large`. */
export function validatePresenceRequest(value: unknown): PresenceRequest {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ZunoError('invalid_body', 'The body must be a JSON object')
  const { streamId, ops = [] } = value as Record<string, unknown>
  if (typeof streamId !== 'string' || !STREAM_ID_PATTERN.test(streamId)) throw new ZunoError('invalid_body', '`streamId` must be the id a `hello` event gave')
  if (!Array.isArray(ops)) throw new ZunoError('invalid_body', '`ops` must be an array')
  if (ops.length > PRESENCE_LIMITS.maxOps) throw new ZunoError('invalid_body', `At most ${PRESENCE_LIMITS.maxOps} ops in one request`)
  return { streamId, ops: ops.map(checkOp) }
}

function checkOp(value: unknown): PresenceOp {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ZunoError('invalid_body', 'Each op must be a JSON object')
  const op = value as Record<string, unknown>
  if (typeof op.tab !== 'string' || !TAB_KEY_PATTERN.test(op.tab)) throw new ZunoError('invalid_body', '`tab` must be 22 base64url characters')
  if (typeof op.room !== 'string' || !STORE_KEY_PATTERN.test(op.room)) {
    throw new ZunoError('invalid_store_key', `Invalid room ${JSON.stringify(String(op.room).slice(0, 200))}`)
  }
  const kinds = ['state', 'leave', 'broadcast'].filter((kind) => Object.hasOwn(op, kind))
  if (kinds.length !== 1) throw new ZunoError('invalid_body', 'Each op has exactly one of `state`, `leave` and `broadcast`')
  if (Object.hasOwn(op, 'seq') && !Object.hasOwn(op, 'broadcast')) throw new ZunoError('invalid_body', '`seq` goes only with `broadcast`')
  if (Object.hasOwn(op, 'leave')) {
    if (op.leave !== true) throw new ZunoError('invalid_body', '`leave` must be true')
    return { tab: op.tab, room: op.room, leave: true }
  }
  if (Object.hasOwn(op, 'broadcast')) {
    if (op.broadcast === undefined || op.broadcast === null) throw new ZunoError('invalid_body', '`broadcast` must be a JSON value other than null')
    checkSize(op.broadcast, PRESENCE_LIMITS.maxBroadcastBytes, 'A broadcast event')
    if (!Object.hasOwn(op, 'seq')) return { tab: op.tab, room: op.room, broadcast: op.broadcast }
    if (!Number.isSafeInteger(op.seq) || (op.seq as number) < 1) throw new ZunoError('invalid_body', '`seq` must be a positive integer')
    return { tab: op.tab, room: op.room, broadcast: op.broadcast, seq: op.seq as number }
  }
  checkSize(op.state, PRESENCE_LIMITS.maxStateBytes, 'A presence value')
  return { tab: op.tab, room: op.room, state: op.state }
}

function checkSize(value: unknown, most: number, what: string): void {
  const json = JSON.stringify(value)
  if (json.length > most || utf8Bytes(json).byteLength > most) throw new ZunoError('presence_too_large', `${what} may take at most ${most} bytes of JSON`)
  // A number JSON cannot hold (1e400 parses as Infinity) would reach the others as null: refused, as a state's is.
  const problem = findNonJson(value, DEFAULT_LIMITS.maxDepth)
  if (problem !== undefined) throw new ZunoError('invalid_body', `${what} is not JSON: ${problem.replace('the state', 'it')}`)
}
