/** Baseline: the SSE route an Express app would write by hand, with a raw write loop. */
import express from 'express'
import { report } from '../harness/channel'
import { openRawStream, serveRawWriter } from './rawSseLoop'

const app = express()
app.get('/zuno/sse', openRawStream)
serveRawWriter()
const server = app.listen(0, '127.0.0.1', () => report({ type: 'ready', port: (server.address() as { port: number }).port }))
