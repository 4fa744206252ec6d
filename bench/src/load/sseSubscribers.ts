/**
 * Many SSE subscribers in one process, for fan-out and memory. The same client reads Zuno and the
 * raw SSE baseline. It speaks HTTP/1.1 on a bare socket and scans the bytes for state events,
 * reading `seq` and `t` with plain string searches: chunked-encoding lines between frames are
 * skipped by the same scan. The least work a client can do, so the servers are what is measured.
 */
import type { Socket } from 'node:net'
import { monotonicMs, onCommand, report } from '../harness/channel'
import { Deliveries, inBatches } from './deliveries'
import { openSseSocket, stateEventsInto } from './sseSocket'

const deliveries = new Deliveries()
const open: Socket[] = []

function subscribe(port: number, path: string): Promise<void> {
  return openSseSocket(port, path, stateEventsInto(deliveries)).then((socket) => {
    open.push(socket)
  })
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
