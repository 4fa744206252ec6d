/**
 * Baseline: a raw SSE write loop on node:http. One frame is encoded per event and written to
 * every open response: the least any SSE server can do.
 */
import { createServer, type ServerResponse } from 'node:http'
import { report } from '../harness/channel'
import { serveCommands } from './serverCommands'

const subscribers = new Set<ServerResponse>()
const server = createServer((req, res) => {
  if (req.url?.startsWith('/zuno/sse') !== true) {
    res.writeHead(404).end()
    return
  }
  req.socket.setNoDelay(true)
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
  res.write('retry: 1000\n\n')
  subscribers.add(res)
  res.on('close', () => subscribers.delete(res))
})

serveCommands((seq, t) => {
  const data = JSON.stringify({ storeKey: 'feed', version: seq, state: { seq, t } })
  const frame = Buffer.from(`id: ${seq}\nevent: state\ndata: ${data}\n\n`)
  for (const res of subscribers) res.write(frame)
})
server.listen(0, '127.0.0.1', () => report({ type: 'ready', port: (server.address() as { port: number }).port }))
