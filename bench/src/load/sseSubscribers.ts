/**
 * Many SSE subscribers in one process, for fan-out and memory. The same client reads Zuno and the
 * raw SSE baseline. It speaks HTTP/1.1 on a bare socket and scans the bytes for state events,
 * reading `seq` and `t` with plain string searches: chunked-encoding lines between frames are
 * skipped by the same scan. The least work a client can do, so the servers are what is measured.
 */
import { connect, type Socket } from 'node:net'
import { monotonicMs, onCommand, report } from '../harness/channel'
import { Deliveries, inBatches } from './deliveries'

const deliveries = new Deliveries()
const open: Socket[] = []

function subscribe(port: number, path: string): Promise<void> {
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
        resolve()
      }
      const end = buffer.lastIndexOf('\n\n')
      if (end < 0) return
      readFrames(buffer.slice(0, end), monotonicMs())
      buffer = buffer.slice(end + 2)
    })
    socket.on('error', reject)
    open.push(socket)
  })
}

/** Finds every state event in `text` and records it. */
function readFrames(text: string, now: number): void {
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

onCommand(async (command) => {
  if (command.type === 'open') {
    const started = monotonicMs()
    const count = command.count as number
    await inBatches(Array.from({ length: count }, (_, i) => i), 200, () => subscribe(command.port as number, command.path as string))
    report({ type: 'opened', ms: monotonicMs() - started, count: open.length })
  } else if (command.type === 'wait') {
    const result = await deliveries.wait(command.first as number, command.count as number, open.length, command.timeoutMs as number)
    report({ type: 'delivered', ...result })
  } else if (command.type === 'close') {
    for (const socket of open.splice(0)) socket.destroy()
    report({ type: 'closed' })
  }
})
report({ type: 'ready' })
