import { createServer, type IncomingMessage } from 'node:http'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type Timers, type ZunoError } from '../src/index'
import { type AuthRequest, createNodeHandler, createUniverse } from '../src/server/index'
import { startZuno } from './support/zunoBehindProxy'
import { until } from './support/until'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/**
 * Every pause of the replica (reconnect and delivery backoff, the token check) shortened to 1 ms:
 * a client that retries what it should not would storm the server at once, so counting requests
 * shows it without waiting on the clock.
 */
const hurried: Timers = {
  setTimeout: (callback) => setTimeout(callback, 1),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/** The same, but a timeout of 10 s or more (the read of a stream's refusal) keeps its length. */
const hurriedButPatient: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms >= 10_000 ? ms : 1),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/** The real EventSource, with what a browser's error event carries: no status. */
class BrowserLikeEventSource extends EventSource {
  override set onerror(listener: ((event: Event) => unknown) | null) {
    super.onerror = listener === null ? null : () => listener(new Event('error'))
  }
  override get onerror() {
    return super.onerror
  }
}

/** A server whose `authenticate` takes the tokens in `valid` (as `?token=` on the stream, a bearer on proposals). */
async function serverTaking(valid: Set<string>) {
  const tokenOf = (request: AuthRequest) => request.query.get('token') ?? request.header('authorization')?.replace(/^Bearer /, '')
  const zuno = await startZuno({
    handler: {
      authenticate: (request) => {
        const token = tokenOf(request)
        return token !== undefined && valid.has(token) ? { id: 'ada' } : undefined
      },
    },
  })
  cleanups.push(() => zuno.close())
  const count = (method: string, path: string) => zuno.seen.filter((request) => request.method === method && request.path === path).length
  return { zuno, streams: () => count('GET', '/zuno/sse'), proposals: () => count('POST', '/zuno/sync') }
}

/** A replica whose `token()` the test changes, counting how often it is read. */
function replicaWith(url: string, initialToken: string) {
  const token = { current: initialToken, reads: 0 }
  const replica = connect({
    url,
    EventSource,
    timers: hurried,
    token: () => {
      token.reads += 1
      return token.current
    },
  })
  cleanups.push(() => replica.close())
  return { replica, token }
}

describe('credentials the server refuses', () => {
  it('stops the stream on a 401 (status unauthorized), holds set(), and sends it once the token changes', async () => {
    const server = await serverTaking(new Set(['fresh']))
    const { replica, token } = replicaWith(server.zuno.url, 'expired')
    const statuses: string[] = []
    replica.status.subscribe((status) => statuses.push(status))
    await until(() => replica.status.get() === 'unauthorized')
    expect(replica.lastError.get()?.code).toBe('unauthenticated')
    const counter = replica.store<number>('counter', 0)
    let settled = false
    const set = counter.set(1).finally(() => {
      settled = true
    })
    // Let the hold check the token 20 times: a client that retried would have asked 20 times too.
    const readsAtHold = token.reads
    await until(() => token.reads >= readsAtHold + 20)
    expect([server.streams(), server.proposals()]).toEqual([1, 0])
    expect([settled, replica.pending.get(), counter.get()]).toEqual([false, 1, 1])
    expect(replica.status.get()).toBe('unauthorized')

    token.current = 'fresh'
    expect(await set).toBe(1)
    expect([server.streams(), server.proposals()]).toEqual([2, 1])
    expect(server.zuno.universe.store('counter').get()).toBe(1)
    await until(() => replica.status.get() === 'connected')
    expect(statuses.filter((status) => status === 'error')).toEqual([])
  })

  it('holds an op refused 401 on its proposal (not rejected, not retried), then sends it under the new token', async () => {
    const valid = new Set(['first'])
    const server = await serverTaking(valid)
    const { replica, token } = replicaWith(server.zuno.url, 'first')
    await until(() => replica.status.get() === 'connected')
    valid.clear() // the open stream stays; the next proposal is refused
    const counter = replica.store<number>('counter', 0)
    let settled = false
    const first = counter.set((n) => n + 1).finally(() => {
      settled = true
    })
    const second = counter.set((n) => n + 1)
    await until(() => replica.status.get() === 'unauthorized')
    expect(replica.lastError.get()?.code).toBe('unauthenticated')
    const readsAtHold = token.reads
    await until(() => token.reads >= readsAtHold + 20)
    expect(server.proposals()).toBe(1)
    expect([settled, replica.pending.get(), counter.get()]).toEqual([false, 2, 2])

    valid.add('second')
    token.current = 'second'
    expect(await first).toBe(1)
    expect(await second).toBe(2)
    expect(server.proposals()).toBe(3) // the refused attempt, then each op once
    expect(server.zuno.universe.store('counter').get()).toBe(2)
    await until(() => replica.status.get() === 'connected')
  })

  it('retries on retry() when the credentials changed where token() cannot show it (a cookie, say)', async () => {
    let signedIn = false
    const zuno = await startZuno({ handler: { authenticate: () => (signedIn ? { id: 'ada' } : undefined) } })
    cleanups.push(() => zuno.close())
    const replica = connect({ url: zuno.url, EventSource, timers: hurried })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'unauthorized')
    const set = replica.store<number>('counter', 0).set(7)
    signedIn = true
    replica.retry()
    expect(await set).toBe(1)
    expect(zuno.seen.filter((request) => request.path === '/zuno/sse')).toHaveLength(2)
  })

  it('reads why the stream was refused with one fetch where EventSource does not say (as in browsers)', async () => {
    const server = await serverTaking(new Set(['fresh']))
    const replica = connect({ url: server.zuno.url, EventSource: BrowserLikeEventSource, timers: hurriedButPatient, token: () => 'expired' })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'unauthorized')
    expect(replica.lastError.get()?.code).toBe('unauthenticated')
    expect(server.streams()).toBe(2) // the stream, and the fetch that read its answer
  })

  it('counts a read of the refusal that never answers as a network failure, and tries the stream again', async () => {
    // The stream is refused with a 503; the read of why (the browser path) goes into a black hole.
    const requests: string[] = []
    const server = createServer((req, res) => {
      requests.push(req.url ?? '')
      if (requests.length === 2) return // the refusal read: never answered
      // The stream tried again: held open, so no later answer replaces the error under test.
      if (requests.length >= 3) return void res.writeHead(200, { 'content-type': 'text/event-stream' }).flushHeaders()
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"ok":false,"error":"unavailable","message":"busy"}')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise((resolve) => server.close(resolve)))
    cleanups.push(() => server.closeAllConnections())
    const { port } = server.address() as { port: number }
    // Pauses hurried; the read's timeout long enough for the read to reach the server, and no longer.
    const timers: Timers = {
      setTimeout: (callback, ms) => setTimeout(callback, ms >= 10_000 ? 200 : 1),
      clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    }
    const replica = connect({ url: `http://127.0.0.1:${port}/zuno`, EventSource: BrowserLikeEventSource, timers })
    cleanups.push(() => replica.close())
    await until(() => requests.length >= 3)
    expect(replica.lastError.get()?.code).toBe('network')
  })

  it('stops the stream on a 403 with status forbidden and the server’s code in lastError', async () => {
    const zuno = await startZuno({ handler: { authenticate: () => ({ id: 'ada' }), authorize: () => false } })
    cleanups.push(() => zuno.close())
    const replica = connect({ url: zuno.url, EventSource, timers: hurried, stores: ['counter'] })
    cleanups.push(() => replica.close())
    await until(() => replica.status.get() === 'forbidden')
    const error = replica.lastError.get() as ZunoError
    expect([error.code, error.status]).toEqual(['forbidden', 403])
  })

  it('shows closed after close(), and rejects what was pending with closed', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const replica = connect({ url: zuno.url, EventSource })
    await until(() => replica.status.get() === 'connected')
    replica.close()
    expect(replica.status.get()).toBe('closed')
    await expect(replica.store<number>('counter', 0).set(1)).rejects.toMatchObject({ code: 'closed' })
  })
})

describe('close()', () => {
  it('abandons the proposal on the wire, so no request outlives the replica', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const handler = createNodeHandler(universe)
    let held: IncomingMessage | undefined
    let abandoned = false
    // Streams are served; a proposal is held, never answered, as by a server that hangs.
    const server = createServer((req, res) => {
      if (req.method !== 'POST') return handler(req, res)
      held = req
      res.on('close', () => {
        abandoned = true
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => universe.close())
    cleanups.push(() => new Promise((resolve) => server.close(resolve)))
    cleanups.push(() => server.closeAllConnections())
    cleanups.push(() => handler.close())
    const { port } = server.address() as { port: number }
    const replica = connect({ url: `http://127.0.0.1:${port}/zuno`, EventSource })
    await until(() => replica.status.get() === 'connected')
    const pending = replica.store<number>('counter', 0).set(1).catch((error: ZunoError) => error.code)
    await until(() => held !== undefined)
    replica.close()
    expect(await pending).toBe('closed')
    await until(() => abandoned)
  })
})
