/**
 * Many SSE subscribers in one process, for frames of any size (the large-store suite's whole
 * states are 1 MB each). Like `sseSubscribers.ts`, each speaks HTTP/1.1 on a bare socket and does
 * the least a client can, but it never joins a frame's bytes into a string: it follows the HTTP/1.1
 * chunk each frame travels in, reads only the frame's first bytes (its event, store and version),
 * counts the rest, and records the frame when its last byte has arrived.
 */
import { connect, type Socket } from 'node:net'
import { monotonicMs, onCommand, report } from '../harness/channel'
import { inBatches } from './deliveries'

/** Enough of a frame to hold its id, event and `{"storeKey":…,"version":…`. */
const HEAD_BYTES = 256

/** What the subscribers received of one store, by version. */
class StoreDeliveries {
  readonly counts: number[] = []
  readonly lastArrival: number[] = []
  /** The frame's size in bytes (the same frame goes to every subscriber; the largest seen is kept). */
  readonly frameBytes: number[] = []

  record(version: number, bytes: number, now: number): void {
    this.counts[version] = (this.counts[version] ?? 0) + 1
    this.lastArrival[version] = now
    if (bytes > (this.frameBytes[version] ?? 0)) this.frameBytes[version] = bytes
  }
}

const stores = new Map<string, StoreDeliveries>()
const open: Socket[] = []
let resyncs = 0

function deliveriesOf(storeKey: string): StoreDeliveries {
  let deliveries = stores.get(storeKey)
  if (deliveries === undefined) stores.set(storeKey, (deliveries = new StoreDeliveries()))
  return deliveries
}

/** A whole frame arrived: its first bytes say what it is. */
function onFrame(head: string, bytes: number, now: number): void {
  const eventAt = head.indexOf('event: ')
  if (eventAt < 0) return // a heartbeat or a retry hint
  const event = head.slice(eventAt + 7, head.indexOf('\n', eventAt))
  if (event === 'resync') resyncs += 1
  if (event !== 'state') return
  const keyAt = head.indexOf('"storeKey":"')
  const versionAt = head.indexOf('"version":')
  if (keyAt < 0 || versionAt < 0) return
  const storeKey = head.slice(keyAt + 12, head.indexOf('"', keyAt + 12))
  deliveriesOf(storeKey).record(Number.parseInt(head.slice(versionAt + 10, versionAt + 30), 10), bytes, now)
}

const enum Reading {
  Headers,
  Size,
  Data,
  End,
}

function subscribe(port: number, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true })
    let reading = Reading.Headers
    let text = '' // the response's headers, then a chunk's size line
    let head = '' // the current frame's first bytes
    let size = 0
    let left = 0
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`))
    socket.on('data', (chunk: Buffer) => {
      const now = monotonicMs()
      let at = 0
      while (at < chunk.length) {
        if (reading === Reading.Headers) {
          text += chunk.toString('latin1', at)
          const end = text.indexOf('\r\n\r\n')
          if (end < 0) return
          if (!text.startsWith('HTTP/1.1 200') || !/transfer-encoding: chunked/i.test(text.slice(0, end))) {
            reject(new Error(`SSE answered ${text.slice(0, 200)}`))
            socket.destroy()
            return
          }
          at = chunk.length - (text.length - end - 4)
          text = ''
          reading = Reading.Size
          resolve()
        } else if (reading === Reading.Size) {
          const newline = chunk.indexOf(10, at)
          text += chunk.toString('latin1', at, newline < 0 ? chunk.length : newline + 1)
          if (newline < 0) return
          at = newline + 1
          size = Number.parseInt(text, 16)
          text = ''
          if (size === 0) return socket.destroy() // the server ended the stream
          left = size
          head = ''
          reading = Reading.Data
        } else if (reading === Reading.Data) {
          const take = Math.min(left, chunk.length - at)
          if (head.length < HEAD_BYTES) head += chunk.toString('latin1', at, at + Math.min(take, HEAD_BYTES - head.length))
          at += take
          left -= take
          if (left === 0) {
            onFrame(head, size, now)
            left = 2 // the CRLF after the chunk
            reading = Reading.End
          }
        } else {
          const take = Math.min(left, chunk.length - at)
          at += take
          left -= take
          if (left === 0) reading = Reading.Size
        }
      }
    })
    socket.on('error', reject)
    open.push(socket)
  })
}

/** Waits until each of `versions` of a store reached `expected` subscribers, or the timeout. */
async function wait(storeKey: string, versions: number[], expected: number, timeoutMs: number) {
  const deliveries = deliveriesOf(storeKey)
  const complete = () => versions.every((version) => (deliveries.counts[version] ?? 0) >= expected)
  const deadline = Date.now() + timeoutMs
  while (!complete() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2))
  return {
    type: 'delivered',
    complete: complete(),
    delivered: versions.reduce((sum, version) => sum + (deliveries.counts[version] ?? 0), 0),
    lastArrival: versions.map((version) => deliveries.lastArrival[version] ?? null),
    frameBytes: versions.map((version) => deliveries.frameBytes[version] ?? null),
    resyncs,
  }
}

onCommand(async (command) => {
  if (command.type === 'open') {
    const started = monotonicMs()
    const count = command.count as number
    await inBatches(Array.from({ length: count }, (_, i) => i), 50, () => subscribe(command.port as number, command.path as string))
    report({ type: 'opened', ms: monotonicMs() - started, count: open.length })
  } else if (command.type === 'wait') {
    report(await wait(command.store as string, command.versions as number[], open.length, command.timeoutMs as number))
  }
})
report({ type: 'ready' })
