/**
 * Contention: writers that each keep one connection and increment a counter, rebasing on the
 * state a 409 carries and retrying until accepted. `shared` puts all of them on one store;
 * otherwise each has its own (the uncontended rate).
 */
import { Agent, request } from 'node:http'
import { monotonicMs, onCommand, report } from '../harness/channel'

interface Answer {
  status: number
  body: { version: number; state: number }
}

function post(agent: Agent, port: number, payload: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/zuno/sync', method: 'POST', agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (text += chunk))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Answer['body'] }))
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

onCommand(async (command) => {
  if (command.type !== 'run') return
  const port = command.port as number
  const writers = command.writers as number
  const deadline = monotonicMs() + (command.durationMs as number)
  const attempts: number[] = []
  let unexpected = 0
  const writer = async (index: number) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const clientId = `${command.label as string}w${index}`
    const storeKey = command.shared ? `${command.label as string}hot` : `${clientId}own`
    let version = 0
    let state = 0
    let opId = 0
    while (monotonicMs() < deadline) {
      for (let attempt = 1; ; attempt++) {
        opId += 1
        const answer = await post(agent, port, JSON.stringify({ storeKey, baseVersion: version, state: state + 1, clientId, opId }))
        if (answer.status === 200 || answer.status === 409) {
          version = answer.body.version
          state = answer.body.state ?? 0
        } else {
          unexpected += 1
        }
        if (answer.status === 200) {
          attempts.push(attempt)
          break
        }
      }
    }
    agent.destroy()
  }
  const started = monotonicMs()
  await Promise.all(Array.from({ length: writers }, (_, i) => writer(i)))
  report({ type: 'result', accepted: attempts.length, seconds: (monotonicMs() - started) / 1000, attempts, unexpected })
})
report({ type: 'ready' })
