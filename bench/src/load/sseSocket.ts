/**
 * One SSE subscriber on a bare socket: HTTP/1.1 by hand, and whole frames handed on as text, with
 * their arrival time. The least work a client can do, so the servers are what is measured.
 */
import { connect, type Socket } from 'node:net'
import { monotonicMs } from '../harness/channel'
import type { Deliveries } from './deliveries'

/**
 * Opens `path` on `port`; resolves with the socket once the server answered 200, then calls
 * `onFrames` with each run of whole frames, every line of them ending in its newline (a reader can
 * look for the end of a `data:` line without a special case for the last one).
 */
export function openSseSocket(port: number, path: string, onFrames: (text: string, now: number) => void): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true })
    socket.setEncoding('latin1')
    let buffer = ''
    let headersDone = false
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`))
    socket.on('data', (chunk: string) => {
      buffer += chunk
      if (!headersDone) {
        const end = buffer.indexOf('\r\n\r\n')
        if (end < 0) return
        if (!buffer.startsWith('HTTP/1.1 200')) {
          reject(new Error(`SSE answered ${buffer.slice(0, 12)}`))
          socket.destroy()
          return
        }
        headersDone = true
        buffer = buffer.slice(end + 4)
        resolve(socket)
      }
      const end = buffer.lastIndexOf('\n\n')
      if (end < 0) return
      onFrames(buffer.slice(0, end + 1), monotonicMs())
      buffer = buffer.slice(end + 2)
    })
    socket.on('error', reject)
  })
}

/**
 * A frame handler that records every state event in `deliveries`, reading `seq` and `t` from the
 * state with plain string searches: chunked-encoding lines between frames are skipped by the same scan.
 */
export function stateEventsInto(deliveries: Deliveries): (text: string, now: number) => void {
  return (text, now) => {
    let from = 0
    for (;;) {
      const at = text.indexOf('event: state\n', from)
      if (at < 0) return
      const seqAt = text.indexOf('"seq":', at)
      if (seqAt < 0) return
      const seq = Number.parseInt(text.slice(seqAt + 6, seqAt + 26), 10)
      deliveries.record(seq, now, () => {
        const tAt = text.indexOf('"t":', seqAt)
        return Number.parseFloat(text.slice(tAt + 4, tAt + 40))
      })
      from = seqAt
    }
  }
}
