/**
 * Following stores at runtime on one stream, over real HTTP on 127.0.0.1: `hello`, `POST
 * /subscribe`, `followed` as of the stream's position, unfollowing, a resume that names the
 * versions held, revocation (`universe.revalidate`), and a control request that reaches another
 * sync server than the stream's.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { Principal } from '../src/server/index'
import { createMemoryStorage, createUniverse } from '../src/server/index'
import { openFollowing, subscribe } from './support/runtimeFollow'
import { dataOf, openRawStream, type SseFrame } from './support/sseReader'
import { serveUniverse, startZuno } from './support/zunoBehindProxy'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe('POST /subscribe', () => {
  it('adds a store to an open stream: its state as of the stream’s position, then each change, and nothing once unfollowed', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    await zuno.universe.store('doc:1', { title: 'a' }).set({ title: 'b' })
    const { stream, streamId } = await openFollowing(cleanups, zuno.url, 'stores=counter&versions=-')
    expect((await stream.nextEvent()).event).toBe('snapshot')

    expect(await subscribe(zuno.url, { streamId, follow: ['doc:1'] })).toEqual({ status: 200, body: { ok: true } })
    // Written before the answer: the stream has it by the time the client is told.
    const followed = await stream.nextEvent(50)
    expect(followed.event).toBe('followed')
    expect(followed.id).toBe(zuno.universe.cursor)
    expect(dataOf(followed)).toEqual({ stores: { 'doc:1': { version: 1, state: { title: 'b' } } } })

    await zuno.universe.store('doc:1').set({ title: 'c' })
    const change = await stream.nextEvent()
    expect([change.event, dataOf(change).storeKey, dataOf(change).version]).toEqual(['state', 'doc:1', 2])

    expect((await subscribe(zuno.url, { streamId, unfollow: ['doc:1'] })).status).toBe(200)
    await zuno.universe.store('doc:1').set({ title: 'd' })
    await zuno.universe.store('counter').set(5)
    // The very next event is the counter's: the unfollowed store's change never came.
    const next = await stream.nextEvent()
    expect([dataOf(next).storeKey, dataOf(next).version]).toEqual(['counter', 1])
  })

  it('opens twenty documents one after another on one stream, each consistent with the changes around it', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const { stream, streamId } = await openFollowing(cleanups, zuno.url, 'stores=&versions=')
    await stream.nextEvent() // the snapshot
    for (let i = 0; i < 20; i++) {
      // A change just before and just after each follow: the first is in the state, the second follows it.
      await zuno.universe.store(`doc:${i}`, 0).set(1)
      expect((await subscribe(zuno.url, { streamId, follow: [`doc:${i}`] })).status).toBe(200)
      await zuno.universe.store(`doc:${i}`).set(2)
      const followed = await stream.nextEvent()
      expect(dataOf(followed)).toEqual({ stores: { [`doc:${i}`]: { version: 1, state: 1 } } })
      const change = await stream.nextEvent()
      expect([dataOf(change).storeKey, dataOf(change).version, dataOf(change).state]).toEqual([`doc:${i}`, 2, 2])
    }
    // One stream for all of them: the server holds one.
    expect(zuno.seen.filter((seen) => seen.path === '/zuno/sse')).toHaveLength(1)
  })

  it('answers 404 unknown_stream for a stream that ended or is another principal’s, 403 for a store the principal may not read', async () => {
    const zuno = await startZuno({
      handler: {
        authenticate: (request) => ({ id: request.header('x-user') ?? 'nobody' }),
        authorize: ({ principal, storeKey }) => !storeKey.startsWith('secret') || principal?.id === 'root',
      },
    })
    cleanups.push(() => zuno.close())
    const { stream, streamId } = await openFollowing(cleanups, zuno.url, 'stores=&versions=', { 'x-user': 'ada' })
    await stream.nextEvent()
    expect(await subscribe(zuno.url, { streamId, follow: ['doc:1'] }, { 'x-user': 'bob' })).toMatchObject({ status: 404, body: { error: 'unknown_stream' } })
    expect(await subscribe(zuno.url, { streamId, follow: ['doc:1', 'secret:1'] }, { 'x-user': 'ada' })).toMatchObject({ status: 403, body: { error: 'forbidden' } })
    // Nothing of a refused request was followed.
    await zuno.universe.store('doc:1', 0).set(1)
    expect(await stream.drainEvents(200)).toEqual([])
    stream.close()
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(await subscribe(zuno.url, { streamId, follow: ['doc:1'] }, { 'x-user': 'ada' })).toMatchObject({ status: 404, body: { error: 'unknown_stream' } })
  })

  it('refuses to follow past 1,000 stores on one stream', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const keys = (from: number, count: number) => Array.from({ length: count }, (_, i) => `d${from + i}`)
    const { stream, streamId } = await openFollowing(cleanups, zuno.url, `stores=${keys(0, 600).join(',')}&versions=${Array(600).fill('-').join(',')}`)
    await stream.nextEvent()
    expect(await subscribe(zuno.url, { streamId, follow: keys(600, 400) })).toMatchObject({ status: 200 })
    expect(await subscribe(zuno.url, { streamId, follow: ['one-more'] })).toMatchObject({ status: 400, body: { error: 'too_many_stores' } })
    // Following one already followed is no addition.
    expect(await subscribe(zuno.url, { streamId, follow: ['d1'] })).toMatchObject({ status: 200 })
  })

  it('reaches a stream that another sync server of the storage holds, through the storage’s bus', async () => {
    const storage = createMemoryStorage()
    const first = await serveUniverse(createUniverse({ storage, allowStore: () => true }))
    const second = await serveUniverse(createUniverse({ storage, allowStore: () => true }))
    cleanups.push(() => first.close(), () => second.close(), () => storage.close())
    const { stream, streamId } = await openFollowing(cleanups, first.url, 'stores=&versions=')
    await stream.nextEvent()
    expect(await subscribe(second.url, { streamId, follow: ['doc:7'] })).toEqual({ status: 200, body: { ok: true } })
    expect((await stream.nextEvent(50)).event).toBe('followed')
    const started = Date.now()
    expect(await subscribe(second.url, { streamId: `${streamId.split('.')[0]}.nosuchstream`, follow: ['doc:7'] })).toMatchObject({ status: 404, body: { error: 'unknown_stream' } })
    // Nobody answers for a stream that is not open: the request waits out the routing bound, no longer.
    expect(Date.now() - started).toBeLessThan(5000)
  })
})

describe('a resume that names what the client holds', () => {
  it('replays what a held store missed, and sends whole a store whose state never arrived or is too old to replay onto', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    for (const key of ['a', 'b', 'c', 'd']) await zuno.universe.store(key, 0).set(1)
    const cursor = zuno.universe.cursor
    for (const key of ['a', 'b', 'c']) await zuno.universe.store(key).set(2)
    // a: held at 1, replayed; b: never arrived (`-`); c: held at 0, older than the replay starts;
    // d: held at 0 and not in the replay at all, yet at 1 on the server.
    const stream = await openRawStream(`${zuno.url}/sse?stores=a&follow=b,c,d&versions=1,-,0,0&lastEventId=${cursor}`)
    cleanups.push(() => stream.close())
    const events = await stream.drainEvents()
    expect(events.map((event) => event.event)).toEqual(['hello', 'state', 'followed', 'resumed'])
    expect([dataOf(events[1] as SseFrame).storeKey, dataOf(events[1] as SseFrame).version]).toEqual(['a', 2])
    expect(dataOf(events[2] as SseFrame)).toEqual({ stores: { b: { version: 2, state: 2 }, c: { version: 2, state: 2 }, d: { version: 1, state: 1 } } })
    expect(events[2]?.id).toBe(zuno.universe.cursor)
  })

  it('keeps the events of a store the client holds newer (its own write, answered before it streamed)', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    await zuno.universe.store('a', 0).set(1)
    const cursor = zuno.universe.cursor
    await zuno.universe.store('a').set(2)
    const stream = await openRawStream(`${zuno.url}/sse?stores=a&versions=2&lastEventId=${cursor}`)
    cleanups.push(() => stream.close())
    expect((await stream.drainEvents()).map((event) => event.event)).toEqual(['hello', 'state', 'resumed'])
  })

  it('leaves out, and reports as revoked, a followed store the principal may no longer read; a named one still refuses the stream', async () => {
    const zuno = await startZuno({ handler: { authorize: ({ storeKey }) => storeKey !== 'secret' } })
    cleanups.push(() => zuno.close())
    const stream = await openRawStream(`${zuno.url}/sse?stores=counter&follow=secret,doc&versions=-,-,-`)
    cleanups.push(() => stream.close())
    const events = await stream.drainEvents()
    expect(events.map((event) => event.event)).toEqual(['hello', 'revoked', 'snapshot'])
    expect(dataOf(events[1] as SseFrame)).toEqual({ stores: ['secret'] })
    const refused = await fetch(`${zuno.url}/sse?stores=secret&versions=-`)
    expect([refused.status, ((await refused.json()) as { error: string }).error]).toEqual([403, 'forbidden'])
  })
})

describe('universe.revalidate', () => {
  /** Rooms and their members: what `authorize` reads, and what the app changes before it revalidates. */
  function roomsServer() {
    const members = new Map<string, Set<string>>([['room:42', new Set(['ada', 'bob'])]])
    const may = (principal: Principal | undefined, storeKey: string) => !storeKey.startsWith('room:') || members.get(storeKey)?.has(principal?.id ?? '') === true
    return { members, handler: { authenticate: (request: { header(name: string): string | null | undefined }) => ({ id: request.header('x-user') ?? 'nobody' }), authorize: ({ principal, storeKey }: { principal: Principal | undefined; storeKey: string }) => may(principal, storeKey) } }
  }

  it('stops an open stream carrying a store its principal may no longer read, from the very next event', async () => {
    const { members, handler } = roomsServer()
    const zuno = await startZuno({ handler })
    cleanups.push(() => zuno.close())
    const { stream, streamId } = await openFollowing(cleanups, zuno.url, 'stores=counter&versions=-', { 'x-user': 'ada' })
    await stream.nextEvent()
    expect((await subscribe(zuno.url, { streamId, follow: ['room:42'] }, { 'x-user': 'ada' })).status).toBe(200)
    expect((await stream.nextEvent()).event).toBe('followed')
    const bob = await openFollowing(cleanups, zuno.url, 'stores=room:42&versions=-', { 'x-user': 'bob' })
    await bob.stream.nextEvent()

    members.get('room:42')?.delete('ada')
    await zuno.universe.revalidate('ada')
    const revoked = await stream.nextEvent()
    expect([revoked.event, dataOf(revoked)]).toEqual(['revoked', { stores: ['room:42'] }])
    await zuno.universe.store('room:42', 0).set(1)
    await zuno.universe.store('counter').set(1)
    // The room's change went to bob, not to ada: her next event is the counter's.
    expect(dataOf(await stream.nextEvent()).storeKey).toBe('counter')
    expect(dataOf(await bob.stream.nextEvent()).storeKey).toBe('room:42')
    // Nor can she follow it again.
    expect((await subscribe(zuno.url, { streamId, follow: ['room:42'] }, { 'x-user': 'ada' })).status).toBe(403)
  })

  it('asks again for a stream of every store: reports what it stopped carrying, and sends whole what it may read again', async () => {
    const { members, handler } = roomsServer()
    const zuno = await startZuno({ handler })
    cleanups.push(() => zuno.close())
    await zuno.universe.store('room:42', 0).set(1)
    const stream = await openRawStream(`${zuno.url}/sse`, { 'x-user': 'ada' })
    cleanups.push(() => stream.close())
    expect(dataOf(await stream.nextEvent())).toMatchObject({ stores: { 'room:42': { version: 1 } } })
    members.get('room:42')?.delete('ada')
    await zuno.universe.revalidate('ada')
    expect(dataOf(await stream.nextEvent())).toEqual({ stores: ['room:42'] })
    await zuno.universe.store('room:42').set(2)
    await zuno.universe.store('counter').set(1)
    expect(dataOf(await stream.nextEvent()).storeKey).toBe('counter')
    // Let in again: its state as of now first (the changes it missed are in it), then its changes.
    members.get('room:42')?.add('ada')
    await zuno.universe.revalidate('ada')
    const followed = await stream.nextEvent()
    expect([followed.event, dataOf(followed), followed.id]).toEqual(['followed', { stores: { 'room:42': { version: 2, state: 2 } } }, zuno.universe.cursor])
    await zuno.universe.store('room:42').set(3)
    expect(dataOf(await stream.nextEvent())).toMatchObject({ storeKey: 'room:42', version: 3 })
  })

  it('reaches the streams another instance of the storage holds', async () => {
    const { members, handler } = roomsServer()
    const storage = createMemoryStorage()
    const holding = createUniverse({ storage, allowStore: () => true })
    const other = createUniverse({ storage, allowStore: () => true })
    const served = await serveUniverse(holding, handler)
    cleanups.push(() => served.close(), () => other.close(), () => storage.close())
    const { stream } = await openFollowing(cleanups, served.url, 'stores=room:42&versions=-', { 'x-user': 'ada' })
    await stream.nextEvent()
    members.get('room:42')?.delete('ada')
    await other.ready
    await other.revalidate('ada')
    expect(dataOf(await stream.nextEvent())).toEqual({ stores: ['room:42'] })
  })
})
