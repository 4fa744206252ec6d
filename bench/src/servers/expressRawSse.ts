/** Baseline: the SSE route an Express app would write by hand, with a raw write loop. */
import express, { type Response } from 'express'
import { report } from '../harness/channel'
import { serveCommands } from './serverCommands'

const subscribers = new Set<Response>()
const app = express()
app.get('/zuno/sse', (req, res) => {
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
const server = app.listen(0, '127.0.0.1', () => report({ type: 'ready', port: (server.address() as { port: number }).port }))
