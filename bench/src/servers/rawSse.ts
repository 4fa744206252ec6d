/**
 * Baseline: a raw SSE write loop on node:http. One frame is encoded per event and written to
 * every open response: the least any SSE server can do.
 */
import { createServer } from 'node:http'
import { report } from '../harness/channel'
import { openRawStream, serveRawWriter } from './rawSseLoop'

const server = createServer((req, res) => {
  if (req.url?.startsWith('/zuno/sse') === true) openRawStream(req, res)
  else res.writeHead(404).end()
})
serveRawWriter()
server.listen(0, '127.0.0.1', () => report({ type: 'ready', port: (server.address() as { port: number }).port }))
