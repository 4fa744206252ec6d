import { connect as connectTcp, type Socket } from 'node:net'
import { type } from 'arktype'
import { EventSource } from 'eventsource'
import * as v from 'valibot'
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest'
import { z } from 'zod'
import { connect } from 'zuno'
import { newClientId } from '../../zuno/src/id'
import { createUniverse, type ServedUniverse, type SyncServerOptions } from 'zuno/server'
import { abandonStreams, gatedAuthenticate } from '../../zuno/test/support/abandon'
import { slowStorage } from '../../zuno/test/support/slowStorage'
import { openRawStream } from '../../zuno/test/support/sseReader'
import { until } from '../../zuno/test/support/until'
import { serveExpress } from './serveExpress'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function serve<U extends ServedUniverse & { close(): Promise<void> }>(universe: U, options: SyncServerOptions = {}) {
  const served = await serveExpress(universe, options)
  cleanups.push(served.close)
  await universe.ready
  epochs.set(served.url, (universe as unknown as { epoch: string }).epoch)
  return served
}

/** Each server's epoch, which raw proposals must name. */
const epochs = new Map<string, string>()

/** A raw proposal: by default the first op of a fresh client. */
const post = (url: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  fetch(`${url}/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ storeKey: 'counter', baseVersion: 0, epoch: epochs.get(url), state: 1, clientId: newClientId(), opId: 1, ...body }),
  })

/** Principals from a `session` cookie, an `Authorization: Bearer` header, or a `token` query (for SSE). */
const users: Record<string, { id: string; stores: string[] }> = {
  'alice-secret': { id: 'alice', stores: ['counter', 'alice.private'] },
  'bob-secret': { id: 'bob', stores: ['counter', 'bob.private'] },
}
const auth: SyncServerOptions = {
  authenticate: (request) => {
    const token =
      request.cookie('session') ?? request.header('authorization')?.replace(/^Bearer /, '') ?? request.query.get('token') ?? ''
    return users[token]
  },
  authorize: ({ principal, storeKey }) => (principal as (typeof users)[string] | undefined)?.stores.includes(storeKey) ?? false,
}
const privateStores = () => createUniverse({ stores: { counter: 0, 'alice.private': 'a', 'bob.private': 'b' } })

describe('authentication and authorization', () => {
  it('answers 401 before any data without credentials, on every endpoint', async () => {
    const { url } = await serve(privateStores(), auth)
    for (const response of [await post(url, {}), await fetch(`${url}/sse`), await fetch(`${url}/state`)]) {
      expect(response.status).toBe(401)
      expect(response.headers.get('content-type')).toMatch(/^application\/json/)
      expect(await response.json()).toMatchObject({ ok: false, error: 'unauthenticated' })
    }
  })

  it('takes a cookie, a bearer header, or a query token for EventSource', async () => {
    const { url } = await serve(privateStores(), auth)
    expect((await post(url, {}, { cookie: 'theme=dark; session=alice-secret' })).status).toBe(200)
    expect((await post(url, { baseVersion: 1, state: 2 }, { authorization: 'Bearer bob-secret' })).status).toBe(200)
    const sse = await openRawStream(`${url}/sse?token=alice-secret`)
    cleanups.push(() => sse.close())
    expect(sse.response.status).toBe(200)
  })

  it('answers 403 to a denied write and changes nothing', async () => {
    const { universe, url } = await serve(privateStores(), auth)
    const denied = await post(url, { storeKey: 'bob.private', state: 'mine now' }, { cookie: 'session=alice-secret' })
    expect(denied.status).toBe(403)
    expect(await denied.json()).toMatchObject({ ok: false, error: 'forbidden' })
    expect(universe.store('bob.private').get()).toBe('b')
    expect(universe.store('bob.private').version).toBe(0)
  })

  it('streams only the stores the principal may read, snapshot and events alike', async () => {
    const { universe, url } = await serve(privateStores(), auth)
    expect((await fetch(`${url}/sse?stores=bob.private&token=alice-secret`)).status).toBe(403)
    expect((await fetch(`${url}/state?stores=bob.private`, { headers: { cookie: 'session=alice-secret' } })).status).toBe(403)
    const state = await (await fetch(`${url}/state`, { headers: { cookie: 'session=alice-secret' } })).json()
    expect(Object.keys(state.stores).sort()).toEqual(['alice.private', 'counter'])

    const sse = await openRawStream(`${url}/sse?token=alice-secret`)
    cleanups.push(() => sse.close())
    const snapshot = JSON.parse((await sse.nextEvent()).data as string)
    expect(Object.keys(snapshot.stores).sort()).toEqual(['alice.private', 'counter'])
    await universe.store('bob.private').set('secret news')
    await universe.store('alice.private').set('for alice')
    const events = await sse.drainEvents()
    expect(events.map((event) => JSON.parse(event.data as string).storeKey)).toEqual(['alice.private'])
  })

  it('scopes a clientId to its principal: a replay of another user’s ids gets nothing of theirs', async () => {
    const { universe, url } = await serve(privateStores(), auth)
    const op = { clientId: newClientId(), opId: 1, baseVersion: 0, state: 5 }
    expect((await post(url, op, { cookie: 'session=alice-secret' })).status).toBe(200)
    // For Bob the same ids are a client of his own: a new op, on a stale base. Not Alice's 200.
    const replay = await post(url, op, { cookie: 'session=bob-secret' })
    expect(replay.status).toBe(409)
    expect(await replay.json()).toMatchObject({ error: 'conflict', version: 1 })
    const ahead = await post(url, { ...op, opId: 2, baseVersion: 1, state: 6 }, { cookie: 'session=bob-secret' })
    expect(ahead.status).toBe(409)
    expect(await ahead.json()).toMatchObject({ error: 'unknown_client' })
    expect(universe.store('counter').get()).toBe(5)
    // Alice's next op is still hers.
    expect((await post(url, { ...op, opId: 2, baseVersion: 1, state: 6 }, { cookie: 'session=alice-secret' })).status).toBe(200)
  })

  it('tells a principal who may write but not read a store its version, never its state', async () => {
    const dropbox: SyncServerOptions = {
      ...auth,
      authorize: ({ storeKey, action }) => storeKey === 'counter' || (storeKey === 'dropbox' && action === 'write'),
    }
    const universe = createUniverse({ stores: { counter: 0, dropbox: 'secret notes' } })
    const { url } = await serve(universe, dropbox)
    await universe.store('dropbox').set('more secret notes')
    const stale = await post(url, { storeKey: 'dropbox', baseVersion: 0, state: 'mine' }, { cookie: 'session=alice-secret' })
    expect(stale.status).toBe(409)
    const conflict = await stale.json()
    expect(conflict).toEqual({ ok: false, error: 'conflict', storeKey: 'dropbox', version: 1 })
    const accepted = await post(url, { storeKey: 'dropbox', baseVersion: 1, state: 'mine' }, { cookie: 'session=alice-secret' })
    expect(await accepted.json()).toEqual({ ok: true, storeKey: 'dropbox', version: 2 })
  })

  it('gives a reader of the stream nothing to pass its ops off as another client’s', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const { url } = await serve(universe)
    // The victim's proposals are slow to arrive; its ops wait, open to being impersonated.
    const slow: typeof fetch = async (input, init) => {
      await new Promise((resolve) => setTimeout(resolve, 300))
      return fetch(input, init)
    }
    const victim = connect({ url, EventSource, fetch: slow })
    cleanups.push(() => victim.close())
    const counter = victim.store<number>('counter', 0)
    const sse = await openRawStream(`${url}/sse`)
    cleanups.push(() => sse.close())
    await sse.nextEvent()
    await counter.set(1)
    const seen = JSON.parse((await sse.nextEvent()).data as string) as { writer: string; opId: number }
    const mine = counter.set(42)
    // The attacker makes an id that starts with the victim's tag, brings it to the victim's next opId
    // with cheap refusals, and writes first.
    const forged = `${seen.writer}.${'A'.repeat(22)}`
    for (let opId = 1; opId <= seen.opId; opId++) await post(url, { storeKey: 'not.declared', clientId: forged, opId })
    expect((await post(url, { baseVersion: 1, state: 666, clientId: forged, opId: seen.opId + 1 })).status).toBe(200)
    const forgedEvent = JSON.parse((await sse.nextEvent()).data as string) as { writer: string; opId: number }
    expect(forgedEvent.opId).toBe(seen.opId + 1)
    expect(forgedEvent.writer).not.toBe(seen.writer) // the tag is a hash of the whole id, not its start
    // The victim's op is not taken for applied: it is rebased and applied on top.
    expect(await mine).toBe(3)
    expect(universe.store('counter').get()).toBe(42)
    await until(() => counter.get() === 42 && counter.version === 3)
  })

  it('lets a replica authenticate with a token for both proposals and stream', async () => {
    const { universe, url } = await serve(privateStores(), auth)
    const replica = connect({ url, EventSource, token: () => 'alice-secret' })
    cleanups.push(() => replica.close())
    await expect(replica.store<string>('alice.private').set('written')).resolves.toBe(1)
    expect(universe.store('alice.private').get()).toBe('written')
  })
})

describe('schemas (Standard Schema)', () => {
  const schemas = {
    counter: z.number().int().nonnegative(),
    title: v.pipe(v.string(), v.maxLength(10)),
    point: type({ x: 'number', y: 'number' }),
  }

  it('validates writes with zod, valibot and arktype, answering 422 with the issues', async () => {
    const universe = createUniverse({ stores: { counter: 0, title: '', point: { x: 0, y: 0 } }, schemas })
    const { url } = await serve(universe)
    for (const [storeKey, state] of [
      ['counter', -1],
      ['title', 'far too long a title'],
      ['point', { x: 'one' }],
    ] as const) {
      const response = await post(url, { storeKey, state })
      expect(response.status, storeKey).toBe(422)
      const body = await response.json()
      expect(body).toMatchObject({ ok: false, error: 'invalid_state' })
      expect(body.issues.length).toBeGreaterThan(0)
      expect(typeof body.issues[0].message).toBe('string')
    }
    expect((await post(url, { storeKey: 'point', state: { x: 1, y: 2 } })).status).toBe(200)
    expect(universe.store('counter').version).toBe(0)
    await expect(universe.store('counter').set(-5)).rejects.toMatchObject({ code: 'invalid_state' })
  })

  it('types stores from their schemas', () => {
    const universe = createUniverse({ schemas })
    expectTypeOf(universe.store('counter').get()).toEqualTypeOf<number>()
    expectTypeOf(universe.store('point').get()).toEqualTypeOf<{ x: number; y: number }>()
    const replica = connect({ url: 'http://127.0.0.1:1/zuno', EventSource, schemas, tabs: false })
    replica.close()
    expectTypeOf(replica.store('title').get()).toEqualTypeOf<string>()
  })

  it('optionally checks on the client, before proposing', async () => {
    const { url } = await serve(createUniverse({ stores: { counter: 0, title: '', point: { x: 0, y: 0 } } }))
    let proposals = 0
    const counting: typeof fetch = (input, init) => {
      proposals += 1
      return fetch(input, init)
    }
    const replica = connect({ url, EventSource, schemas, fetch: counting })
    cleanups.push(() => replica.close())
    await expect(replica.store('title').set('x'.repeat(50))).rejects.toMatchObject({ code: 'invalid_state' })
    expect(proposals).toBe(0)
    await expect(replica.store('title').set('ok')).resolves.toBe(1)
  })
})

describe('limits', () => {
  it('caps the number of stores and the size of a state', async () => {
    const universe = createUniverse({ stores: { counter: 0 }, allowStore: () => true, maxStores: 2, maxStateBytes: 100 })
    const { url } = await serve(universe)
    expect((await post(url, { storeKey: 'second' })).status).toBe(200)
    const third = await post(url, { storeKey: 'third' })
    expect(third.status).toBe(403)
    expect(await third.json()).toMatchObject({ error: 'store_limit' })
    const big = await post(url, { state: 'x'.repeat(200) })
    expect(big.status).toBe(413)
    expect(await big.json()).toMatchObject({ error: 'state_too_large' })
  })

  it('caps streams in all and per principal with 503 and a jittered Retry-After', async () => {
    const { url } = await serve(privateStores(), { ...auth, maxStreams: 3, maxStreamsPerPrincipal: 2 })
    const open = async (token: string) => {
      const sse = await openRawStream(`${url}/sse?token=${token}`)
      cleanups.push(() => sse.close())
      return sse.response
    }
    expect((await open('alice-secret')).status).toBe(200)
    expect((await open('alice-secret')).status).toBe(200)
    const third = await open('alice-secret')
    expect(third.status).toBe(503)
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(await third.json()).toMatchObject({ error: 'too_many_streams' })
    expect((await open('bob-secret')).status).toBe(200)
    expect((await open('bob-secret')).status).toBe(503) // the total is reached
  })

  it('gives back the place of every stream whose client left during an async authenticate', async () => {
    const gated = gatedAuthenticate()
    const { url, middleware, http } = await serve(createUniverse({ stores: { counter: 0 } }), {
      authenticate: gated.authenticate,
      maxStreams: 5,
      maxStreamsPerPrincipal: 16,
    })
    const connections = () => new Promise<number>((resolve) => http.getConnections((_, count) => resolve(count)))
    await abandonStreams(url, 20, gated, connections)
    // All five places are free again: five streams of the same principal open, a sixth is refused.
    const opened = await Promise.all(Array.from({ length: 5 }, () => openRawStream(`${url}/sse`)))
    for (const sse of opened) {
      cleanups.push(() => sse.close())
      expect(sse.response.status).toBe(200)
      expect((await sse.nextEvent()).event).toBe('snapshot')
    }
    expect((await fetch(`${url}/sse`)).status).toBe(503)
    for (const sse of opened) sse.close()
    await until(() => middleware.server.streams === 0)
  })

  it('caps anonymous streams per peer address', async () => {
    const { url } = await serve(createUniverse({ stores: { counter: 0 } }), { maxStreamsPerPrincipal: 2 })
    const open = async () => {
      const sse = await openRawStream(`${url}/sse`)
      cleanups.push(() => sse.close())
      return sse.response
    }
    expect((await open()).status).toBe(200)
    expect((await open()).status).toBe(200)
    const third = await open()
    expect(third.status).toBe(503)
    expect(await third.json()).toMatchObject({ error: 'too_many_streams' })
  })

  it('takes the peer from X-Forwarded-For only with trustProxy', async () => {
    const limited = { maxProposalsPerSecond: 1 }
    const burst = async (url: string) => {
      const statuses: number[] = []
      for (let i = 0; i < 3; i++) {
        const response = await post(url, { baseVersion: i, state: i + 1 }, { 'x-forwarded-for': `10.0.0.${i}, 127.0.0.1` })
        statuses.push(response.status)
      }
      return statuses
    }
    // Without trust, the header is the client's claim and changes nothing: one address, one budget.
    expect(await burst((await serve(createUniverse({ stores: { counter: 0 } }), limited)).url)).toEqual([200, 200, 429])
    // Behind a trusted proxy each forwarded address has its own budget.
    expect(await burst((await serve(createUniverse({ stores: { counter: 0 } }), { ...limited, trustProxy: true })).url)).toEqual([200, 200, 200])
  })

  it('frees a stream place when the stream closes', async () => {
    const { url } = await serve(privateStores(), { maxStreams: 1 })
    const first = await openRawStream(`${url}/sse`)
    await first.nextEvent()
    expect((await fetch(`${url}/sse`)).status).toBe(503)
    first.close()
    await until(async () => {
      const next = await openRawStream(`${url}/sse`)
      next.close()
      return next.response.status === 200
    })
  })

  it('limits the proposal rate per peer with 429 and Retry-After, which a replica waits out', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const { url } = await serve(universe, { maxProposalsPerSecond: 5 })
    const statuses: number[] = []
    const hasty = newClientId()
    for (let i = 0; i < 15; i++) statuses.push((await post(url, { clientId: hasty, opId: i + 1, baseVersion: i, state: i + 1 })).status)
    expect(statuses.filter((status) => status === 200)).toHaveLength(10) // the burst: twice the rate
    const limited = await post(url, { clientId: hasty, opId: 11, baseVersion: 10, state: 11 })
    expect(limited.status).toBe(429)
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0)
    // A replica is told to wait, waits, and gets through: no op is dropped.
    const replica = connect({ url, EventSource })
    cleanups.push(() => replica.close())
    const counter = replica.store<number>('counter')
    const all = await Promise.all(Array.from({ length: 12 }, () => counter.set((n) => n + 1)))
    expect(all).toHaveLength(12)
    expect(universe.store('counter').get()).toBe(22)
  }, 30_000)
})

describe('CSRF and CORS', () => {
  it('refuses origins outside the allowlist, and requests that are not JSON', async () => {
    const { url } = await serve(createUniverse({ stores: { counter: 0 } }), { allowedOrigins: ['https://app.example'] })
    const evil = await post(url, {}, { origin: 'https://evil.example' })
    expect(evil.status).toBe(403)
    expect(await evil.json()).toMatchObject({ error: 'origin_not_allowed' })
    expect((await fetch(`${url}/sse`, { headers: { origin: 'https://evil.example' } })).status).toBe(403)
    expect((await post(url, {}, { origin: 'https://app.example' })).status).toBe(200)
    // A form post, which a browser sends cross-site without a preflight, is never accepted.
    const form = await fetch(`${url}/sync`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', origin: 'https://app.example' },
      body: '{}',
    })
    expect(form.status).toBe(415)
  })
})

describe('prototype pollution', () => {
  const nasty = (depth: number, key: string): unknown => {
    let value: unknown = { polluted: true }
    for (let i = 0; i < depth; i++) value = JSON.parse(`{"${key}": ${JSON.stringify(value)}, "n": ${i}}`)
    return value
  }

  it('keeps __proto__, constructor and prototype keys as plain data at every depth', async () => {
    const universe = createUniverse({ allowStore: () => true })
    const { url } = await serve(universe)
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      for (const depth of [1, 2, 5, 10]) {
        const storeKey = `store.${key.replace(/_/g, 'u')}.${depth}`
        const raw = `{"storeKey":"${storeKey}","baseVersion":0,"epoch":"${epochs.get(url)}","clientId":"${newClientId()}","opId":1,"state":${JSON.stringify(nasty(depth, key))}}`
        const response = await fetch(`${url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw })
        expect(response.status).toBe(200)
        const stored = (await (await fetch(`${url}/state?stores=${storeKey}`)).json()).stores[storeKey].state
        expect(Object.keys(stored)).toContain(key)
      }
    }
    expect(({} as { polluted?: boolean; n?: number }).polluted).toBeUndefined()
    expect(({} as { n?: number }).n).toBeUndefined()
    expect((Object.prototype as { polluted?: boolean }).polluted).toBeUndefined()
  })

  it('treats store keys named after prototype members as ordinary, undeclared stores', async () => {
    const universe = createUniverse({ stores: { counter: 0 }, schemas: { counter: z.number() } })
    const { url } = await serve(universe)
    for (const storeKey of ['constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
      expect((await post(url, { storeKey })).status, storeKey).toBe(403)
    }
    const state = await (await fetch(`${url}/state?stores=constructor,toString`)).json()
    expect(state.stores).toEqual({})
  })
})

describe('slow consumers', () => {
  it('keeps memory bounded with 100 stalled readers under a heavy write load, while healthy readers get everything', async () => {
    const universe = createUniverse({ stores: { blob: '' } })
    const { middleware, port, url } = await serve(universe, { maxQueuedBytes: 1024 * 1024, maxProposalsPerSecond: 1e6, maxStreamsPerPrincipal: 1000 })
    const stalled: Socket[] = []
    for (let i = 0; i < Number(process.env.STALLED ?? 100); i++) {
      const socket = connectTcp(port, '127.0.0.1')
      socket.write('GET /zuno/sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
      socket.pause()
      stalled.push(socket)
    }
    cleanups.push(() => {
      for (const socket of stalled) socket.destroy()
    })
    const healthy = await Promise.all([openRawStream(`${url}/sse`), openRawStream(`${url}/sse`)])
    for (const sse of healthy) {
      cleanups.push(() => sse.close())
      await sse.nextEvent()
    }
    await until(() => middleware.server.streams === 2 + stalled.length).catch(() => {
      throw new Error(`streams: ${middleware.server.streams}`)
    })

    global.gc?.()
    const before = process.memoryUsage().rss
    const writes = 150
    const received = healthy.map(() => [] as number[])
    const reading = healthy.map(async (sse, i) => {
      while ((received[i] as number[]).length < writes) {
        const event = await sse.nextEvent(20_000)
        if (event.event === 'state') (received[i] as number[]).push(JSON.parse(event.data as string).version)
      }
    })
    const big = 'x'.repeat(256 * 1024)
    for (let i = 0; i < writes; i++) {
      await universe.store<string>('blob').set(`${i}${big}`) // 150 × 256 KiB = 37.5 MiB to each reader
      // Healthy readers keep up (at most a frame or two behind); the stalled ones never read.
      await until(() => received.every((list) => list.length >= i - 1)).catch(() => {
        throw new Error(`healthy readers behind at write ${i}: ${received.map((list) => list.length)}`)
      })
    }
    await Promise.all(reading)
    for (const list of received) expect(list).toEqual(Array.from({ length: writes }, (_, i) => i + 1))
    // The stalled readers were dropped past their cap instead of buffering everything for each.
    await until(() => middleware.server.streams === 2).catch(() => {
      throw new Error(`stalled readers still subscribed: ${middleware.server.streams - 2}`)
    })
    const growth = process.memoryUsage().rss - before
    expect(growth).toBeLessThan(200 * 1024 * 1024)
  }, 60_000)
})

describe('graceful shutdown', () => {
  it('finishes proposals in flight, refuses new requests, and ends streams with a retry hint', async () => {
    const storage = slowStorage()
    const universe = createUniverse({ stores: { counter: 0 }, storage })
    const { middleware, url } = await serve(universe)
    const sse = await openRawStream(`${url}/sse`)
    cleanups.push(() => sse.close())
    await sse.nextEvent()
    const inFlight = post(url, { state: 42 })
    await until(() => storage.waiting() === 1)
    const stopping = middleware.shutdown()
    const refused = await post(url, { baseVersion: 1, state: 43 })
    expect(refused.status).toBe(503)
    expect(await refused.json()).toMatchObject({ error: 'shutting_down' })
    storage.release()
    await stopping
    const acknowledged = await inFlight
    expect(acknowledged.status).toBe(200)
    expect(universe.store('counter').get()).toBe(42)
    const frames = []
    for (;;) {
      const frame = await sse.next(2000).catch(() => undefined)
      if (frame === undefined) break
      frames.push(frame)
    }
    expect(frames.some((frame) => frame.retry !== undefined)).toBe(true)
  })
})
