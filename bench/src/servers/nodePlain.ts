/** Baseline and ceiling: a bare node:http JSON route. */
import { createServer } from 'node:http'
import { report } from '../harness/channel'
import { PlainCas } from './plainCas'

const cas = new PlainCas()
const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/zuno/sync') {
    res.writeHead(404).end()
    return
  }
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    let body: unknown
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      body = undefined
    }
    const answer = cas.propose(body)
    const text = JSON.stringify(answer.body)
    res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text)
  })
})
server.listen(0, '127.0.0.1', () => report({ type: 'ready', port: (server.address() as { port: number }).port }))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
