/**
 * The presence suite's peers, all in one process: R rooms of P peers, each peer moving its cursor
 * at 20 Hz (a new `{ x, y }` every 50 ms, phases spread evenly over the 50 ms), stamped with the
 * moment it was made (`t`, monotonic ms) and its number (`s`).
 *
 * - `zuno`: peers are tabs; a stream (`GET /zuno/sse?hello=1`) carries `tabsPerStream` tabs of one
 *   room and posts `POST /zuno/presence` as the replica's sender does: each tab's latest value
 *   (latest wins), a tab's changes on its pace (20 a second, bursts of 2), requests one at a time
 *   and 100 a second at most (bursts of 10), on their own keep-alive connection. Every stream reads its room's `presence` events.
 * - `socketio`: peers are sockets (engine.io v4 over WebSocket), each in its room, emitting every
 *   value; the server broadcasts each one to the room.
 *
 * Both speak their protocol on bare sockets, with the least work a client can do (as the fan-out
 * suite's subscribers), so the servers are what is measured. A delivered update is one peer's
 * value arriving at one other peer (for Zuno, at each other tab of the stream it reached).
 */
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { monotonicMs, onCommand, report } from '../harness/channel'
import { inBatches } from './deliveries'
import { openSseSocket } from './sseSocket'

const TICK_MS = 50
/** A stream's requests go one per 10 ms on average, in bursts of up to 10 (the replica's sender). */
const REQUEST_GAP_MS = 10
const REQUEST_BURST = 10

/** Latencies, weighted, in buckets of 0.02 ms up to 60 s: percentiles of millions of deliveries without keeping them. */
class Histogram {
  static readonly RESOLUTION = 0.02
  readonly counts = new Float64Array(Math.ceil(60_000 / Histogram.RESOLUTION) + 1)
  total = 0
  add(ms: number, weight: number): void {
    const bucket = Math.min(this.counts.length - 1, Math.max(0, Math.round(ms / Histogram.RESOLUTION)))
    this.counts[bucket]! += weight
    this.total += weight
  }
  percentile(p: number): number {
    if (this.total === 0) return Number.NaN
    const rank = (p / 100) * this.total
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return i * Histogram.RESOLUTION
    }
    return (this.counts.length - 1) * Histogram.RESOLUTION
  }
}

/** One peer: a tab (Zuno) or a socket (socket.io). */
interface Peer {
  index: number
  room: number
  seq: number
  /** Zuno: when the tab's next change is due on its pace (one per 50 ms; one may go a period early). */
  pace: number
  /** The Zuno stream carrying it. */
  stream?: ZunoStream
  /** Zuno: the tab's key, and its latest value. */
  tab?: string
  state?: { x: number; y: number; t: number; s: number }
  /** socket.io: its socket. */
  socket?: Socket
}

// What a measurement counts: values made in [windowStart, windowEnd), and what became of them.
let windowStart = Number.POSITIVE_INFINITY
let windowEnd = Number.POSITIVE_INFINITY
let made = 0
let delivered = 0
/** The last arrival of anything: once the peers stop, arrivals stop when every queue on the way has drained. */
let lastArrival = 0
let latency = new Histogram()
let lags: number[] = []
let skippedMoves = 0
let errors = 0
let errorSample = ''
const inWindow = (t: number) => t >= windowStart && t < windowEnd

function resetCounts(): void {
  windowStart = windowEnd = Number.POSITIVE_INFINITY
  made = delivered = lastArrival = skippedMoves = 0
  latency = new Histogram()
  lags = []
  for (const frames of framesByRoom) frames.clear()
  seenValues = 0
}

let system: 'zuno' | 'socketio' = 'zuno'
let peers: Peer[] = []
/** Peers by the 1 ms slot (of 50) they move in. */
let slots: Peer[][] = []
let rooms = 0
let peersPerRoom = 0

// The mover: every 50 ms, each peer in its slot.
let moving = false
let origin = 0
let nextSlot = 0
let moverTimer: ReturnType<typeof setTimeout> | undefined

function startMoving(): void {
  moving = true
  origin = monotonicMs()
  nextSlot = 0
  moverTimer = setTimeout(moveDue, 1)
}

function moveDue(): void {
  if (!moving) return
  const now = monotonicMs()
  const due = Math.floor(now - origin)
  // Far behind (more than a period): those moves are not made, and the rate made says so.
  if (due - nextSlot >= TICK_MS) {
    for (let slot = nextSlot; slot <= due - TICK_MS; slot++) skippedMoves += slots[slot % TICK_MS]!.length
    nextSlot = due - TICK_MS + 1
  }
  for (; nextSlot <= due; nextSlot++) {
    const slot = slots[nextSlot % TICK_MS]!
    if (slot.length === 0) continue
    if (inWindow(now)) lags.push(now - (origin + nextSlot))
    for (const peer of slot) move(peer, now)
  }
  moverTimer = setTimeout(moveDue, 1)
}

function move(peer: Peer, now: number): void {
  const seq = ++peer.seq
  const state = { x: (peer.index * 37 + seq * 7) % 1920, y: (peer.index * 11 + seq * 3) % 1080, t: now, s: seq }
  if (inWindow(now)) made++
  if (system === 'socketio') sendWs(peer.socket!, `42["cursor",${JSON.stringify(state)}]`)
  else {
    peer.state = state
    changed(peer.stream!, peer, now)
  }
}

function layout(count: number): void {
  peers = Array.from({ length: count }, (_, index) => ({ index, room: Math.floor(index / peersPerRoom), seq: 0, pace: Number.NEGATIVE_INFINITY }))
  slots = Array.from({ length: TICK_MS }, () => [])
  // Phases spread evenly over the period, and within a room too.
  for (const peer of peers) slots[Math.floor(((peer.index * 7 + peer.room) % peersPerRoom) * (TICK_MS / peersPerRoom)) % TICK_MS]!.push(peer)
}

// ---------------------------------------------------------------- Zuno

interface ZunoStream {
  streamId: string
  sse: Socket
  post: Socket
  tabs: Peer[]
  ownIds: Set<string>
  room: number
  dirty: Set<Peer>
  inFlight: boolean
  /** When its next request is due on its pace (a burst may go ahead of it). */
  requestPace: number
  timer: ReturnType<typeof setTimeout> | undefined
  answered: ((status: number, body: string) => void) | undefined
}

/** Per room, the frames seen since the last reset, by their first value (the same bytes reach every stream of the room). */
const framesByRoom: Array<Map<string, Array<{ t: number; id: string }>>> = []
let seenValues = 0
let streams: ZunoStream[] = []
let port = 0

function changed(stream: ZunoStream, peer: Peer, now: number): void {
  stream.dirty.add(peer)
  schedule(stream, now)
}

/** When a tab may send its next change: a period before its pace's next slot (the replica's sender: 20 a second, bursts of 2). */
const changeDueAt = (peer: Peer) => peer.pace - TICK_MS

function schedule(stream: ZunoStream, now: number): void {
  if (stream.inFlight || stream.timer !== undefined || stream.dirty.size === 0) return
  let dueAt = Number.POSITIVE_INFINITY
  for (const peer of stream.dirty) dueAt = Math.min(dueAt, changeDueAt(peer))
  const wait = Math.max(dueAt, stream.requestPace - REQUEST_GAP_MS * REQUEST_BURST) - now
  if (wait <= 0) sendPresence(stream, now)
  else
    stream.timer = setTimeout(() => {
      stream.timer = undefined
      sendPresence(stream, monotonicMs())
    }, wait)
}

function sendPresence(stream: ZunoStream, now: number): void {
  const due = [...stream.dirty].filter((peer) => changeDueAt(peer) <= now)
  const ops = due.map((peer) => ({ tab: peer.tab, room: `room:${peer.room}`, state: peer.state }))
  for (const peer of due) {
    stream.dirty.delete(peer)
    peer.pace = Math.max(peer.pace, now) + TICK_MS
  }
  stream.inFlight = true
  stream.requestPace = Math.max(stream.requestPace, now) + REQUEST_GAP_MS
  post(stream, JSON.stringify({ streamId: stream.streamId, ops }), (status, body) => {
    stream.inFlight = false
    if (status !== 200) {
      errors++
      errorSample ||= `${status} ${body.slice(0, 200)}`
    }
    schedule(stream, monotonicMs())
  })
}

function post(stream: ZunoStream, body: string, answered: (status: number, body: string) => void): void {
  stream.answered = answered
  stream.post.write(`POST /zuno/presence HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
}

/** A keep-alive connection for a stream's requests, one at a time: hands each answer to the stream's `answered`. */
function openPost(stream: ZunoStream): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true })
    socket.setEncoding('latin1')
    let buffer = ''
    socket.on('data', (chunk: string) => {
      buffer += chunk
      for (;;) {
        const end = buffer.indexOf('\r\n\r\n')
        if (end < 0) return
        const lengthAt = buffer.toLowerCase().indexOf('content-length:')
        const length = lengthAt >= 0 && lengthAt < end ? Number.parseInt(buffer.slice(lengthAt + 15, buffer.indexOf('\r\n', lengthAt)), 10) : 0
        if (buffer.length < end + 4 + length) return
        const status = Number.parseInt(buffer.slice(9, 12), 10)
        const body = buffer.slice(end + 4, end + 4 + length)
        buffer = buffer.slice(end + 4 + length)
        const answered = stream.answered
        stream.answered = undefined
        answered?.(status, body)
      }
    })
    socket.once('connect', () => resolve(socket))
    socket.on('error', reject)
  })
}

async function openStream(tabs: Peer[]): Promise<ZunoStream> {
  const stream: ZunoStream = {
    streamId: '',
    sse: undefined as unknown as Socket,
    post: undefined as unknown as Socket,
    tabs,
    ownIds: new Set(),
    room: tabs[0]!.room,
    dirty: new Set(),
    inFlight: false,
    requestPace: Number.NEGATIVE_INFINITY,
    timer: undefined,
    answered: undefined,
  }
  // Ready once its hello names it, which may come in the same packet as the answer's headers.
  let named = () => {}
  let failed = (_error: Error) => {}
  const hello = new Promise<void>((resolve, reject) => {
    named = resolve
    failed = reject
  })
  stream.sse = await openSseSocket(port, '/zuno/sse?hello=1', (text, now) => {
    if (stream.streamId === '') {
      const at = text.indexOf('event: hello\ndata: ')
      if (at >= 0) {
        stream.streamId = (JSON.parse(text.slice(at + 19, text.indexOf('\n', at + 19))) as { streamId: string }).streamId
        named()
      }
    }
    presenceFrames(stream, text, now)
  })
  stream.sse.on('error', failed)
  await hello
  return stream
}

/** Reads the `presence` events of one arrival at a stream: each value's latency, once per tab of the stream that is not its sender. */
function presenceFrames(stream: ZunoStream, text: string, now: number): void {
  lastArrival = now
  let from = 0
  for (;;) {
    const at = text.indexOf('event: presence\ndata: ', from)
    if (at < 0) return
    const start = at + 22
    const end = text.indexOf('\n', start)
    from = end
    // A whole room (a stream new to it) is not an update of anyone's.
    const head = text.slice(start, start + 60)
    if (head.includes('"whole":true')) continue
    // The key of this frame: its first value's peer and number.
    const idAt = text.indexOf('"id":"', start)
    const sAt = text.indexOf('"s":', start)
    if (idAt < 0 || idAt > end || sAt < 0 || sAt > end) continue
    const key = text.slice(idAt + 6, idAt + 22) + text.slice(sAt + 4, sAt + 14)
    const frames = framesByRoom[stream.room]!
    let values = frames.get(key)
    if (values === undefined) {
      const message = JSON.parse(text.slice(start, end)) as { peers?: Array<{ id: string; state: { t: number } | null }> }
      values = []
      for (const peer of message.peers ?? []) {
        if (peer.state === null || !inWindow(peer.state.t)) continue
        values.push({ t: peer.state.t, id: peer.id })
        seenValues++
      }
      frames.set(key, values)
    }
    if (values.length === 0) continue
    const tabs = stream.tabs.length
    for (const { t, id } of values) {
      const weight = stream.ownIds.has(id) ? tabs - 1 : tabs
      if (weight === 0) continue
      latency.add(now - t, weight)
      delivered += weight
    }
  }
}

async function openZuno(tabsPerStream: number): Promise<void> {
  const groups: Peer[][] = []
  for (let i = 0; i < peers.length; i += tabsPerStream) groups.push(peers.slice(i, i + tabsPerStream))
  await inBatches(groups, 100, async (tabs) => {
    const stream = await openStream(tabs)
    stream.post = await openPost(stream)
    for (const tab of tabs) {
      tab.stream = stream
      tab.tab = randomBytes(16).toString('base64url')
      tab.state = { x: 0, y: 0, t: 0, s: 0 }
    }
    // Joins: every tab with its first value; the answer names each tab's peer.
    const ops = tabs.map((tab) => ({ tab: tab.tab, room: `room:${tab.room}`, state: tab.state }))
    const answer = await new Promise<{ status: number; body: string }>((resolve) => post(stream, JSON.stringify({ streamId: stream.streamId, ops }), (status, body) => resolve({ status, body })))
    if (answer.status !== 200) throw new Error(`join answered ${answer.status}: ${answer.body.slice(0, 300)}`)
    const { peers: ids, refused } = JSON.parse(answer.body) as { peers: Record<string, string>; refused?: unknown }
    if (refused !== undefined) throw new Error(`join refused: ${JSON.stringify(refused).slice(0, 300)}`)
    for (const id of Object.values(ids)) stream.ownIds.add(id)
    stream.requestPace = monotonicMs() + REQUEST_GAP_MS
    streams.push(stream)
  })
}

// ---------------------------------------------------------------- socket.io (engine.io v4 over WebSocket)

const ZERO_MASK = Buffer.alloc(4)

/** A masked text frame (the mask is zeros: servers unmask whatever the key). */
function sendWs(socket: Socket, text: string): void {
  const payload = Buffer.from(text, 'latin1')
  const length = payload.length
  const header = length < 126 ? Buffer.from([0x81, 0x80 | length]) : Buffer.from([0x81, 0x80 | 126, length >> 8, length & 0xff])
  socket.write(Buffer.concat([header, ZERO_MASK, payload]))
}

/** Reads a decimal number at `at` in `bytes`. */
function numberAt(bytes: Buffer, at: number): number {
  let value = 0
  let i = at
  for (; i < bytes.length; i++) {
    const c = bytes[i]!
    if (c < 48 || c > 57) break
    value = value * 10 + (c - 48)
  }
  if (bytes[i] === 46) {
    let scale = 0.1
    for (i++; i < bytes.length; i++) {
      const c = bytes[i]!
      if (c < 48 || c > 57) break
      value += (c - 48) * scale
      scale /= 10
    }
  }
  return value
}

const T_FIELD = Buffer.from('"t":')

function openSocket(peer: Peer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true })
    let buffer: Buffer = Buffer.alloc(0)
    let upgraded = false
    socket.on('connect', () =>
      socket.write(
        `GET /socket.io/?EIO=4&transport=websocket&room=room:${peer.room} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    )
    socket.on('data', (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n')
        if (end < 0) return
        if (!buffer.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 101')) {
          reject(new Error(`socket.io answered ${buffer.subarray(0, 200).toString('latin1')}`))
          socket.destroy()
          return
        }
        upgraded = true
        buffer = buffer.subarray(end + 4)
      }
      const now = monotonicMs()
      lastArrival = now
      let offset = 0
      while (buffer.length - offset >= 2) {
        let length = buffer[offset + 1]! & 0x7f
        let head = 2
        if (length === 126) {
          if (buffer.length - offset < 4) break
          length = buffer.readUInt16BE(offset + 2)
          head = 4
        } else if (length === 127) {
          if (buffer.length - offset < 10) break
          length = Number(buffer.readBigUInt64BE(offset + 2))
          head = 10
        }
        if (buffer.length - offset < head + length) break
        const start = offset + head
        const end = start + length
        offset = end
        const kind = buffer[start]
        if (kind === 0x34 && buffer[start + 1] === 0x32) {
          // 42["cursor","<sid>",{…,"t":…}]: one delivery.
          const tAt = buffer.indexOf(T_FIELD, start)
          if (tAt < 0 || tAt >= end) continue
          const t = numberAt(buffer, tAt + 4)
          if (!inWindow(t)) continue
          latency.add(now - t, 1)
          delivered++
        } else if (kind === 0x32) sendWs(socket, '3') // ping → pong
        else if (kind === 0x30) sendWs(socket, '40') // open → connect to the main namespace
        else if (kind === 0x34 && buffer[start + 1] === 0x30) resolve(socket) // connected
      }
      buffer = offset === buffer.length ? Buffer.alloc(0) : buffer.subarray(offset)
    })
    socket.on('error', reject)
  })
}

async function openSocketIo(): Promise<void> {
  await inBatches(peers, 100, async (peer) => {
    peer.socket = await openSocket(peer)
  })
}

// ---------------------------------------------------------------- commands

onCommand(async (command) => {
  if (command.type === 'open') {
    system = command.system as 'zuno' | 'socketio'
    port = command.port as number
    rooms = command.rooms as number
    peersPerRoom = command.peersPerRoom as number
    for (let room = 0; room < rooms; room++) framesByRoom.push(new Map())
    layout(rooms * peersPerRoom)
    const started = monotonicMs()
    if (system === 'zuno') await openZuno(command.tabsPerStream as number)
    else await openSocketIo()
    // Until every join has gone round.
    await new Promise((resolve) => setTimeout(resolve, 500))
    resetCounts()
    report({ type: 'opened', ms: monotonicMs() - started, peers: peers.length, connections: system === 'zuno' ? streams.length * 2 : peers.length })
  } else if (command.type === 'move') {
    resetCounts()
    startMoving()
    report({ type: 'moving' })
  } else if (command.type === 'window') {
    windowStart = monotonicMs()
  } else if (command.type === 'windowEnd') {
    windowEnd = monotonicMs()
    report({ type: 'windowEnded' })
  } else if (command.type === 'stop') {
    moving = false
    clearTimeout(moverTimer)
    // What was made in the window may still be on its way: wait until nothing at all arrived for 500 ms (every queue drained), at most drainMs.
    const drainEnd = monotonicMs() + (command.drainMs as number)
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      const now = monotonicMs()
      if (now >= drainEnd || now - lastArrival > 500) break
    }
    const others = peersPerRoom - 1
    const sortedLags = [...lags].sort((a, b) => a - b)
    report({
      type: 'result',
      windowMs: windowEnd - windowStart,
      made,
      target: Math.round((peers.length * (windowEnd - windowStart)) / TICK_MS),
      skippedMoves,
      // Zuno: the values that reached the room in some frame; the others were superseded (latest wins).
      seenValues: system === 'zuno' ? seenValues : made,
      delivered,
      expected: (system === 'zuno' ? seenValues : made) * others,
      p50: latency.percentile(50),
      p99: latency.percentile(99),
      max: latency.percentile(100),
      lagP99: sortedLags[Math.min(sortedLags.length - 1, Math.floor(sortedLags.length * 0.99))] ?? 0,
      errors,
      errorSample,
    })
  }
})
report({ type: 'ready' })
