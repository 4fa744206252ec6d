/** Many socket.io clients in one process (websocket transport), read like the SSE subscribers. */
import { io, type Socket } from 'socket.io-client'
import { monotonicMs, onCommand, report } from '../harness/channel'
import { Deliveries, inBatches } from './deliveries'

interface FeedEvent {
  state: { seq: number; t: number }
}

const deliveries = new Deliveries()
const open: Socket[] = []

function subscribe(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], forceNew: true, reconnection: false })
    socket.on('connect', () => resolve())
    socket.on('connect_error', reject)
    socket.on('state', (event: FeedEvent) => deliveries.record(event.state.seq, monotonicMs(), () => event.state.t))
    open.push(socket)
  })
}

onCommand(async (command) => {
  if (command.type === 'open') {
    const started = monotonicMs()
    await inBatches(Array.from({ length: command.count as number }, (_, i) => i), 200, () => subscribe(command.port as number))
    report({ type: 'opened', ms: monotonicMs() - started, count: open.length })
  } else if (command.type === 'wait') {
    const result = await deliveries.wait(command.first as number, command.count as number, open.length, command.timeoutMs as number)
    report({ type: 'delivered', ...result })
  } else if (command.type === 'close') {
    for (const socket of open.splice(0)) socket.disconnect()
    report({ type: 'closed' })
  }
})
report({ type: 'ready' })
