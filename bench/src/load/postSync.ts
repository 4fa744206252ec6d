/** One `POST /zuno/sync` over a keep-alive agent, as the bench's protocol-level writers send it. */
import { type Agent, request } from 'node:http'

/** Sends `payload` (a JSON body) and resolves with the status and the answer's text. */
export function postSync(agent: Agent, port: number, payload: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/zuno/sync', method: 'POST', agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (text += chunk))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}
