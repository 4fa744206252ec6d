/** Baseline: a plain Express route as an app would write it: `express.json()` in, `res.json()` out. */
import express from 'express'
import { report } from '../harness/channel'
import { PlainCas } from './plainCas'

const cas = new PlainCas()
const app = express()
app.post('/zuno/sync', express.json({ limit: '1mb' }), (req, res) => {
  const answer = cas.propose(req.body)
  res.status(answer.status).json(answer.body)
})
const server = app.listen(0, '127.0.0.1', () => report({ type: 'ready', port: (server.address() as { port: number }).port }))
