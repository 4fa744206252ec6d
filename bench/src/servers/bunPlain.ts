/** Baseline: a plain `Bun.serve` JSON route. */
import { report } from '../harness/channel'
import { PlainCas } from './plainCas'

declare const Bun: {
  serve(options: { port: number; hostname: string; fetch(request: Request): Response | Promise<Response> }): { port: number }
}

const cas = new PlainCas()
const server = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(request) {
    if (request.method !== 'POST' || new URL(request.url).pathname !== '/zuno/sync') return new Response(null, { status: 404 })
    const answer = cas.propose(await request.json().catch(() => undefined))
    return Response.json(answer.body, { status: answer.status })
  },
})
report({ type: 'ready', port: server.port })
