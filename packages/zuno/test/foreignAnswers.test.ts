import type { IncomingMessage } from 'node:http'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type ZunoError } from '../src/index'
import { htmlPage, type ProxyAnswer, startProxy, startZuno } from './support/zunoBehindProxy'
import { until } from './support/until'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** What the proxy in front of the server does with one proposal (its parsed body, and how many proposals it has seen). */
type ProposalRule = (proposal: { storeKey: string; state: unknown; opId: number }, count: number) => ProxyAnswer | undefined

/** A real Zuno server behind a real proxy that answers some proposals itself, and a replica that goes through the proxy. */
async function behindProxy(rule: ProposalRule) {
  const zuno = await startZuno()
  cleanups.push(() => zuno.close())
  let proposals = 0
  const proxy = await startProxy(zuno, (req: IncomingMessage, body) => {
    if (req.method !== 'POST') return undefined
    return rule(JSON.parse(body), ++proposals)
  })
  cleanups.push(proxy.close)
  const replica = connect({ url: proxy.url, EventSource })
  cleanups.push(() => replica.close())
  await until(() => replica.status.get() === 'connected')
  const syncsSeen = () => zuno.seen.filter((request) => request.method === 'POST').length
  return { zuno, replica, syncsSeen, proposalsSent: () => proposals }
}

/** A body-size limit in front of the app, as nginx's `client_max_body_size` answers it. */
const sizeLimit: ProposalRule = ({ state }) =>
  typeof state === 'string' && state.length > 100 ? { status: 413, body: htmlPage(413, 'Request Entity Too Large') } : undefined

describe('answers that are not Zuno’s', () => {
  it('refuses an op a proxy answers with an HTML 413 as http_413, and the queue moves on', async () => {
    const { zuno, replica, syncsSeen, proposalsSent } = await behindProxy(sizeLimit)
    const note = replica.store<string>('note', '')
    const refused = note.set('x'.repeat(500)).catch((error: ZunoError) => error)
    const accepted = note.set('short')
    const error = (await refused) as ZunoError
    expect([error.code, error.status]).toEqual(['http_413', 413])
    // The refused op was never recorded, so the next one takes its id and goes through.
    expect(await accepted).toBe(1)
    expect(zuno.universe.store('note').get()).toBe('short')
    expect(note.get()).toBe('short')
    expect([proposalsSent(), syncsSeen()]).toEqual([2, 1]) // tried once, not retried
    expect(replica.lastError.get()?.code).toBe('http_413')
  })

  it('refuses an op a proxy answers with a bare 404 (no body) as http_404', async () => {
    // A router in front of the app that only knows some paths answers everything else with an empty 404.
    const { replica, syncsSeen } = await behindProxy(({ storeKey }) => (storeKey === 'unrouted' ? { status: 404 } : undefined))
    const refused = await replica.store<number>('unrouted', 0).set(1).catch((error: ZunoError) => error)
    expect((refused as ZunoError).code).toBe('http_404')
    expect(await replica.store<number>('counter', 0).set(3)).toBe(1)
    expect(syncsSeen()).toBe(1)
  })

  it('does not take a 200 of another shape for an acceptance: the op is retried until the server answers', async () => {
    // Someone else's API (or a misrouted request) answering `{"ok":true}`: no version, so nothing was accepted.
    const notZunos = { status: 200, body: '{"ok":true}', contentType: 'application/json' }
    const { zuno, replica, syncsSeen, proposalsSent } = await behindProxy((_proposal, count) => (count === 1 ? notZunos : undefined))
    const counter = replica.store<number>('counter', 0)
    expect(await counter.set(41)).toBe(1)
    expect(zuno.universe.store('counter').get()).toBe(41)
    expect([proposalsSent(), syncsSeen()]).toEqual([2, 1])
  })

  it('retries an op a proxy answers with an HTML 502 until the server takes it, applied once', async () => {
    const badGateway = { status: 502, body: htmlPage(502, 'Bad Gateway') }
    const { zuno, replica, syncsSeen, proposalsSent } = await behindProxy((proposal, count) =>
      count <= 2 ? badGateway : sizeLimit(proposal, count),
    )
    const counter = replica.store<number>('counter', 0)
    expect(await counter.set((n) => n + 1)).toBe(1)
    expect(proposalsSent()).toBe(3) // two 502s, then the server's answer
    expect(zuno.universe.store('counter').get()).toBe(1)
    expect(syncsSeen()).toBe(1)
  })

  it('refuses an op a proxy redirects to a sign-in page as redirected, without following the redirect', async () => {
    const toSignIn = { status: 302, headers: { location: '/login?next=%2Fzuno%2Fsync' }, body: htmlPage(302, 'Found') }
    const { zuno, replica, syncsSeen } = await behindProxy((_proposal, count) => (count === 1 ? toSignIn : undefined))
    const counter = replica.store<number>('counter', 0)
    const refused = (await counter.set(7).catch((error: ZunoError) => error)) as ZunoError
    expect(refused.code).toBe('redirected')
    expect(refused.message).toContain('/login')
    // Not processed, so its id is free: the next op takes it and is applied.
    expect(await counter.set(8)).toBe(1)
    expect(zuno.universe.store('counter').get()).toBe(8)
    expect(syncsSeen()).toBe(1)
    expect(zuno.seen.some((request) => request.path.includes('login'))).toBe(false)
  })

  it('rejects an op in doubt that a proxy then refuses as outcome_unknown, and never reuses its id', async () => {
    // The first attempt reaches the server and is applied, but its answer is lost; the retry meets
    // a proxy's 403 (a firewall rule, a session that expired at the edge), which says nothing of it.
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    let proposals = 0
    const proxy = await startProxy(zuno, (req: IncomingMessage) => {
      if (req.method !== 'POST') return undefined
      proposals += 1
      if (proposals === 1) return { status: 0, afterForwarding: true }
      if (proposals === 2) return { status: 403, body: htmlPage(403, 'Forbidden') }
      return undefined
    })
    cleanups.push(proxy.close)
    // Following another store, so the stream's echo of the applied op does not settle it first.
    const replica = connect({ url: proxy.url, EventSource, stores: ['elsewhere'] })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'connected')
    const counter = replica.store<number>('counter', 0)
    const doubted = (await counter.set((n) => n + 1).catch((error: ZunoError) => error)) as ZunoError
    expect(doubted.code).toBe('outcome_unknown')
    expect((doubted.cause as ZunoError).code).toBe('http_403')
    // The next op goes under the next id: applied, not refused as a reuse of the doubted one's.
    await counter.set((n) => n + 1)
    expect(zuno.universe.store('counter').get()).toBe(2)
    expect(zuno.universe.store('counter').version).toBe(2)
  })
})
