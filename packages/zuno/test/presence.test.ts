/**
 * Presence on the server, over real HTTP on 127.0.0.1: `POST /presence` and the `presence` events
 * of open streams. Joins, changes coalesced per tick, leaves, broadcasts, the principal the server
 * authenticated, takeover by another stream (a new leader tab), the bounds, the grace after a
 * stream ends, silence, revocation, and two instances on one storage's bus.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { PresenceMessage } from '../src/protocol'
import type { Principal } from '../src/server/index'
import { createMemoryStorage, createUniverse } from '../src/server/index'
import { openRawStream, type RawStream, type SseFrame } from './support/sseReader'
import { until } from './support/until'
import { serveUniverse, startZuno } from './support/zunoBehindProxy'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A tab's key, as a tab makes one (22 base64url characters). */
const tabKey = (name: string) => name.padEnd(22, '_').slice(0, 22)

/** An authenticated server: `x-user` names the principal; `room:*` is read by its members only. */
function roomsHandler(members = new Map<string, Set<string>>([['room:1', new Set(['ada', 'bob'])]])) {
  const may = (principal: Principal | undefined, storeKey: string) => !storeKey.startsWith('room:') || members.get(storeKey)?.has(principal?.id ?? '') === true
  return {
    members,
    handler: {
      authenticate: (request: { header(name: string): string | null | undefined }) => ({ id: request.header('x-user') ?? 'nobody' }),
      authorize: ({ principal, storeKey }: { principal: Principal | undefined; storeKey: string }) => may(principal, storeKey),
    },
  }
}

/** A stream that asked for its id (`hello`), past its snapshot. */
async function openStream(url: string, user: string): Promise<{ stream: RawStream; streamId: string; user: string }> {
  const stream = await openRawStream(`${url}/sse?stores=&hello=1`, { 'x-user': user })
  cleanups.push(() => stream.close())
  const hello = await stream.nextEvent()
  expect(hello.event).toBe('hello')
  expect((await stream.nextEvent()).event).toBe('snapshot')
  return { stream, streamId: (JSON.parse(hello.data as string) as { streamId: string }).streamId, user }
}

async function presence(url: string, user: string, body: unknown) {
  const response = await fetch(`${url}/presence`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-user': user }, body: JSON.stringify(body) })
  return {
    status: response.status,
    body: (await response.json()) as { ok: boolean; peers?: Record<string, string>; refused?: Record<string, { error: string; message: string }>; error?: string; message?: string },
  }
}

const messageOf = (frame: SseFrame) => {
  expect(frame.event).toBe('presence')
  return JSON.parse(frame.data as string) as PresenceMessage
}

describe('POST /presence', () => {
  it('shows each stream the room whole as it joins, then who joined, changed and left, with the principal the server authenticated', async () => {
    const { handler } = roomsHandler()
    const zuno = await startZuno({ handler })
    cleanups.push(() => zuno.close())
    const ada = await openStream(zuno.url, 'ada')
    const bob = await openStream(zuno.url, 'bob')

    const joined = await presence(zuno.url, 'ada', { streamId: ada.streamId, ops: [{ tab: tabKey('ada1'), room: 'room:1', state: { x: 1 } }] })
    expect(joined.status).toBe(200)
    const adaId = joined.body.peers?.[tabKey('ada1')] as string
    expect(adaId).toMatch(/^[A-Za-z0-9_-]{16}$/)
    expect(messageOf(await ada.stream.nextEvent())).toEqual({ room: 'room:1', whole: true, peers: [{ id: adaId, principal: 'ada', state: { x: 1 } }] })
    // Her join, as the room hears of it: to her stream too (one frame for all; a tab knows its own id).
    expect(messageOf(await ada.stream.nextEvent())).toEqual({ room: 'room:1', peers: [{ id: adaId, principal: 'ada', state: { x: 1 } }] })

    const bobJoined = await presence(zuno.url, 'bob', { streamId: bob.streamId, ops: [{ tab: tabKey('bob1'), room: 'room:1', state: null }] })
    const bobId = bobJoined.body.peers?.[tabKey('bob1')] as string
    expect(messageOf(await bob.stream.nextEvent())).toEqual({
      room: 'room:1',
      whole: true,
      peers: [
        { id: adaId, principal: 'ada', state: { x: 1 } },
        { id: bobId, principal: 'bob', state: null },
      ],
    })
    // Ada hears of Bob at the next tick (the same frame reaches Bob, who ignores his own).
    expect(messageOf(await ada.stream.nextEvent())).toEqual({ room: 'room:1', peers: [{ id: bobId, principal: 'bob', state: null }] })
    expect(messageOf(await bob.stream.nextEvent())).toEqual({ room: 'room:1', peers: [{ id: bobId, principal: 'bob', state: null }] })

    // Five moves in one request: one change goes out, the latest.
    const moves = [2, 3, 4, 5, 6].map((x) => ({ tab: tabKey('ada1'), room: 'room:1', state: { x } }))
    expect((await presence(zuno.url, 'ada', { streamId: ada.streamId, ops: moves })).status).toBe(200)
    expect(messageOf(await bob.stream.nextEvent())).toEqual({ room: 'room:1', peers: [{ id: adaId, principal: 'ada', state: { x: 6 } }] })
    await ada.stream.nextEvent()

    expect((await presence(zuno.url, 'ada', { streamId: ada.streamId, ops: [{ tab: tabKey('ada1'), room: 'room:1', leave: true }] })).status).toBe(200)
    expect(messageOf(await bob.stream.nextEvent())).toEqual({ room: 'room:1', left: [adaId] })
  })

  it('coalesces a room’s changes to one frame per tick, whatever the rate', async () => {
    const zuno = await startZuno({ handler: { presence: { tickMs: 200 } } })
    cleanups.push(() => zuno.close())
    const watcher = await openStream(zuno.url, '')
    const mover = await openStream(zuno.url, '')
    await presence(zuno.url, '', { streamId: watcher.streamId, ops: [{ tab: tabKey('w'), room: 'doc:1', state: 0 }] })
    await watcher.stream.nextEvent()
    await presence(zuno.url, '', { streamId: mover.streamId, ops: [{ tab: tabKey('m'), room: 'doc:1', state: 0 }] })
    await watcher.stream.nextEvent() // the mover's join
    const started = Date.now()
    for (let x = 1; x <= 20; x++) await presence(zuno.url, '', { streamId: mover.streamId, ops: [{ tab: tabKey('m'), room: 'doc:1', state: x }] })
    const elapsed = Date.now() - started
    await new Promise((resolve) => setTimeout(resolve, 250))
    const frames = (await watcher.stream.drainEvents(300)).map(messageOf)
    // At most one frame a tick over the time the moves took (and one more at its end), each the latest value then.
    expect(frames.length).toBeLessThanOrEqual(Math.ceil(elapsed / 200) + 2)
    expect(frames.at(-1)?.peers?.[0]?.state).toBe(20)
  })

  it('sends the first change after a quiet tick at once, and holds the next ones for the tick', async () => {
    const tickMs = 2000
    const zuno = await startZuno({ handler: { presence: { tickMs } } })
    cleanups.push(() => zuno.close())
    const watcher = await openStream(zuno.url, '')
    const mover = await openStream(zuno.url, '')
    await presence(zuno.url, '', { streamId: watcher.streamId, ops: [{ tab: tabKey('w'), room: 'doc:1', state: 0 }] })
    await presence(zuno.url, '', { streamId: mover.streamId, ops: [{ tab: tabKey('m'), room: 'doc:1', state: 0 }] })
    // The joins, then a tick with nothing to send.
    await watcher.stream.drainEvents(tickMs + 300)
    const posted = Date.now()
    await presence(zuno.url, '', { streamId: mover.streamId, ops: [{ tab: tabKey('m'), room: 'doc:1', state: 1 }] })
    expect(messageOf(await watcher.stream.nextEvent()).peers?.[0]?.state).toBe(1)
    const first = Date.now()
    expect(first - posted).toBeLessThan(tickMs / 2)
    await presence(zuno.url, '', { streamId: mover.streamId, ops: [{ tab: tabKey('m'), room: 'doc:1', state: 2 }] })
    await presence(zuno.url, '', { streamId: mover.streamId, ops: [{ tab: tabKey('m'), room: 'doc:1', state: 3 }] })
    expect(messageOf(await watcher.stream.nextEvent(3 * tickMs)).peers?.[0]?.state).toBe(3)
    expect(Date.now() - first).toBeGreaterThanOrEqual(tickMs * 0.9)
  })

  it('broadcasts to everyone in the room, in order, never to a tab outside it, and refuses a broadcast from outside', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const a = await openStream(zuno.url, '')
    const b = await openStream(zuno.url, '')
    const outside = await openStream(zuno.url, '')
    await presence(zuno.url, '', { streamId: a.streamId, ops: [{ tab: tabKey('a'), room: 'doc:1', state: null }] })
    await presence(zuno.url, '', { streamId: b.streamId, ops: [{ tab: tabKey('b'), room: 'doc:1', state: null }] })
    await presence(zuno.url, '', { streamId: outside.streamId, ops: [{ tab: tabKey('o'), room: 'doc:2', state: null }] })
    await b.stream.drainEvents(120)
    const sent = await presence(zuno.url, '', {
      streamId: a.streamId,
      ops: [
        { tab: tabKey('a'), room: 'doc:1', broadcast: { emoji: '👍' } },
        { tab: tabKey('a'), room: 'doc:1', broadcast: 'ping' },
      ],
    })
    const from = sent.body.peers?.[tabKey('a')]
    expect(messageOf(await b.stream.nextEvent())).toEqual({
      room: 'doc:1',
      broadcasts: [
        { from, principal: '', data: { emoji: '👍' } },
        { from, principal: '', data: 'ping' },
      ],
    })
    expect((await outside.stream.drainEvents(150)).map(messageOf).filter((message) => message.room === 'doc:1')).toEqual([])
    const refused = await presence(zuno.url, '', { streamId: outside.streamId, ops: [{ tab: tabKey('o'), room: 'doc:1', broadcast: 'sneak' }] })
    expect(refused).toMatchObject({ status: 200, body: { ok: true, refused: { 'doc:1': { error: 'invalid_body' } } } })
    expect(await b.stream.drainEvents(150)).toEqual([])
  })

  it('refuses bad requests with a code and applies none of them; skips only the rooms the rules or bounds refuse', async () => {
    const { handler } = roomsHandler()
    const zuno = await startZuno({ handler })
    cleanups.push(() => zuno.close())
    const ada = await openStream(zuno.url, 'ada')
    const eve = await openStream(zuno.url, 'eve')
    const tab = tabKey('t')
    const cases: Array<[string, unknown, number, string, string?]> = [
      ['ada', 'not an object', 400, 'invalid_body'],
      ['ada', { streamId: 'nope', ops: [] }, 400, 'invalid_body'],
      ['ada', { streamId: ada.streamId, ops: {} }, 400, 'invalid_body'],
      ['ada', { streamId: ada.streamId, ops: [{ tab: 'short', room: 'room:1', state: 1 }] }, 400, 'invalid_body'],
      ['ada', { streamId: ada.streamId, ops: [{ tab, room: '../x', state: 1 }] }, 400, 'invalid_store_key'],
      ['ada', { streamId: ada.streamId, ops: [{ tab, room: 'room:1' }] }, 400, 'invalid_body'],
      ['ada', { streamId: ada.streamId, ops: [{ tab, room: 'room:1', state: 1, leave: true }] }, 400, 'invalid_body'],
      ['ada', { streamId: ada.streamId, ops: [{ tab, room: 'room:1', leave: false }] }, 400, 'invalid_body'],
      ['ada', { streamId: ada.streamId, ops: [{ tab, room: 'room:1', state: 'x'.repeat(2100) }] }, 413, 'presence_too_large'],
      ['ada', { streamId: ada.streamId, ops: [{ tab, room: 'room:1', broadcast: 'x'.repeat(2100) }] }, 413, 'presence_too_large'],
      ['ada', { streamId: ada.streamId, ops: Array.from({ length: 257 }, () => ({ tab, room: 'room:1', state: 1 })) }, 400, 'invalid_body'],
      // A bad op anywhere: none of the request is applied (the first op is fine).
      ['ada', { streamId: ada.streamId, ops: [{ tab, room: 'doc:1', state: 1 }, { tab, room: 'doc:2' }] }, 400, 'invalid_body'],
      // Another principal's stream is no stream at all.
      ['eve', { streamId: ada.streamId, ops: [{ tab, room: 'doc:1', state: 1 }] }, 404, 'unknown_stream'],
      ['ada', { streamId: `${ada.streamId.split('.')[0]}.gone`, ops: [] }, 404, 'unknown_stream'],
    ]
    for (const [user, body, status, error] of cases) {
      const answer = await presence(zuno.url, user, body)
      expect([JSON.stringify(body).slice(0, 80), answer.status, answer.body.error]).toEqual([JSON.stringify(body).slice(0, 80), status, error])
      expect(answer.body.message).toEqual(expect.any(String))
    }
    // A number JSON cannot hold would reach the others as null: refused, as a state's is.
    for (const field of ['state', 'broadcast']) {
      const huge = await fetch(`${zuno.url}/presence`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-user': 'ada' },
        body: `{"streamId":"${ada.streamId}","ops":[{"tab":"${tab}","room":"doc:1","${field}":{"x":1e400}}]}`,
      })
      expect([huge.status, ((await huge.json()) as { error: string; message: string }).message]).toEqual([400, expect.stringContaining('is not JSON: it.x is Infinity')])
    }
    const wrongType = await fetch(`${zuno.url}/presence`, { method: 'POST', headers: { 'content-type': 'text/plain', 'x-user': 'ada' }, body: '{}' })
    expect([wrongType.status, ((await wrongType.json()) as { error: string }).error]).toEqual([415, 'unsupported_media_type'])
    const get = await fetch(`${zuno.url}/presence`, { headers: { 'x-user': 'ada' } })
    expect(get.status).toBe(405)
    // Nothing joined: a stream that joins doc:1 now finds it empty but for itself.
    await presence(zuno.url, 'ada', { streamId: ada.streamId, ops: [{ tab: tabKey('seen'), room: 'doc:1', state: 'me' }] })
    const whole = messageOf(await ada.stream.nextEvent())
    expect(whole.peers?.map((peer) => peer.state)).toEqual(['me'])

    // A room the stream's principal may not read is skipped, and named; the other room's op is applied.
    const mixed = await presence(zuno.url, 'eve', { streamId: eve.streamId, ops: [{ tab, room: 'doc:3', state: 'eve' }, { tab, room: 'room:1', state: 1 }] })
    expect(mixed).toMatchObject({ status: 200, body: { ok: true, refused: { 'room:1': { error: 'forbidden', message: expect.any(String) } } } })
    expect(Object.keys(mixed.body.refused ?? {})).toEqual(['room:1'])
    expect(messageOf(await eve.stream.nextEvent())).toMatchObject({ room: 'doc:3', whole: true })
    // Past 32 rooms for one tab: the 33rd is skipped with room_full.
    const many = await presence(zuno.url, 'ada', { streamId: ada.streamId, ops: Array.from({ length: 33 }, (_, i) => ({ tab, room: `doc:${i + 10}`, state: 1 })) })
    expect(many.body.refused).toEqual({ 'doc:42': { error: 'room_full', message: 'A tab is in at most 32 rooms', tabs: [tab] } })
  })

  it('refuses a join past maxPeersPerRoom with room_full, and lets the next in once one leaves', async () => {
    const zuno = await startZuno({ handler: { presence: { maxPeersPerRoom: 2 } } })
    cleanups.push(() => zuno.close())
    const { streamId } = await openStream(zuno.url, '')
    const join = (name: string) => presence(zuno.url, '', { streamId, ops: [{ tab: tabKey(name), room: 'doc:1', state: name }] })
    expect((await join('a')).status).toBe(200)
    expect((await join('b')).status).toBe(200)
    expect(await join('c')).toMatchObject({ status: 200, body: { refused: { 'doc:1': { error: 'room_full' } } } })
    // A peer already in sends again: not a join.
    expect((await join('b')).status).toBe(200)
    await presence(zuno.url, '', { streamId, ops: [{ tab: tabKey('a'), room: 'doc:1', leave: true }] })
    expect((await join('c')).body.refused).toBeUndefined()
  })

  it('delivers an event sent again with a number its tab’s peer has had once, and refuses a number that is not one', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const sender = await openStream(zuno.url, '')
    const watcher = await openStream(zuno.url, '')
    await presence(zuno.url, '', { streamId: watcher.streamId, ops: [{ tab: tabKey('w'), room: 'doc:1', state: null }] })
    await presence(zuno.url, '', { streamId: sender.streamId, ops: [{ tab: tabKey('s'), room: 'doc:1', state: null }] })
    const event = (data: string, seq: number) => ({ tab: tabKey('s'), room: 'doc:1', broadcast: data, seq })
    // The first request's answer is lost; the replica sends it again with the next event.
    expect((await presence(zuno.url, '', { streamId: sender.streamId, ops: [event('a', 1), event('b', 2)] })).status).toBe(200)
    expect((await presence(zuno.url, '', { streamId: sender.streamId, ops: [event('a', 1), event('b', 2), event('c', 3)] })).status).toBe(200)
    // Without a number, an event always goes.
    expect((await presence(zuno.url, '', { streamId: sender.streamId, ops: [{ tab: tabKey('s'), room: 'doc:1', broadcast: 'd' }] })).status).toBe(200)
    // Out of order, within the window of 64 below the highest: each once; past it, taken as had.
    const late = [event('j', 100), event('k', 37), event('l', 36), event('m', 35), event('k', 37), event('n', 101), event('o', 38)]
    expect((await presence(zuno.url, '', { streamId: sender.streamId, ops: late })).status).toBe(200)
    const heard = (await watcher.stream.drainEvents(300)).map(messageOf).flatMap((message) => message.broadcasts ?? []).map((broadcast) => broadcast.data)
    expect(heard).toEqual(['a', 'b', 'c', 'd', 'j', 'k', 'l', 'n', 'o'])
    for (const seq of [0, -1, 1.5, '1', null, 2 ** 53]) {
      const refused = await presence(zuno.url, '', { streamId: sender.streamId, ops: [{ ...event('e', 4), seq }] })
      expect([refused.status, refused.body.error]).toEqual([400, 'invalid_body'])
    }
    const onState = await presence(zuno.url, '', { streamId: sender.streamId, ops: [{ tab: tabKey('s'), room: 'doc:1', state: 1, seq: 5 }] })
    expect([onState.status, onState.body.error]).toEqual([400, 'invalid_body'])
  })

  it('limits requests per stream with 429 rate_limited and Retry-After', async () => {
    const zuno = await startZuno({ handler: { maxPresencePerSecond: 2 } })
    cleanups.push(() => zuno.close())
    const { streamId } = await openStream(zuno.url, '')
    const answers = []
    for (let i = 0; i < 6; i++) answers.push(await fetch(`${zuno.url}/presence`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamId, ops: [] }) }))
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 429, 429])
    expect(Number(answers[4]?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
  })

  it('limits broadcast events per stream: a request’s worth at once, then the rate; a request past it is refused whole', async () => {
    const zuno = await startZuno({ handler: { maxBroadcastsPerSecond: 1 } })
    cleanups.push(() => zuno.close())
    const sender = await openStream(zuno.url, '')
    const watcher = await openStream(zuno.url, '')
    await presence(zuno.url, '', { streamId: watcher.streamId, ops: [{ tab: tabKey('w'), room: 'doc:1', state: null }] })
    const events = (count: number, from: number) => Array.from({ length: count }, (_, i) => ({ tab: tabKey('s'), room: 'doc:1', broadcast: from + i }))
    // A join and 255 events: a full request (256 ops) passes even at 1 a second.
    expect((await presence(zuno.url, '', { streamId: sender.streamId, ops: [{ tab: tabKey('s'), room: 'doc:1', state: null }, ...events(255, 0)] })).status).toBe(200)
    // The bucket holds 256 (a request's most): one more event, then none left.
    expect((await presence(zuno.url, '', { streamId: sender.streamId, ops: events(1, 255) })).status).toBe(200)
    const refused = await fetch(`${zuno.url}/presence`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamId: sender.streamId, ops: [{ tab: tabKey('s'), room: 'doc:1', state: 'moved' }, ...events(1, 256)] }) })
    expect(refused.status).toBe(429)
    expect(((await refused.json()) as { error: string }).error).toBe('rate_limited')
    expect(Number(refused.headers.get('retry-after'))).toBe(1)
    // Refused whole: neither its change nor its event reached the room; a request without events still goes.
    expect((await presence(zuno.url, '', { streamId: sender.streamId, ops: [] })).status).toBe(200)
    const heard = (await watcher.stream.drainEvents(300)).map(messageOf)
    expect(heard.flatMap((message) => message.broadcasts ?? []).map((broadcast) => broadcast.data)).toEqual(Array.from({ length: 256 }, (_, i) => i))
    expect(heard.flatMap((message) => message.peers ?? []).some((peer) => peer.state === 'moved')).toBe(false)
    // A second later there is one again.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    expect((await presence(zuno.url, '', { streamId: sender.streamId, ops: events(1, 256) })).status).toBe(200)
  })
})

describe('presence over time', () => {
  it('a new stream takes a tab over within the grace without a leave or a join; past the grace it leaves', async () => {
    const zuno = await startZuno({ handler: { presence: { graceMs: 1500 } } })
    cleanups.push(() => zuno.close())
    const watcher = await openStream(zuno.url, '')
    await presence(zuno.url, '', { streamId: watcher.streamId, ops: [{ tab: tabKey('w'), room: 'doc:1', state: 'w' }] })
    await watcher.stream.drainEvents(100)
    const leader = await openStream(zuno.url, '')
    const tabs = ['t1', 't2', 't3'].map((name) => ({ tab: tabKey(name), room: 'doc:1', state: name }))
    await presence(zuno.url, '', { streamId: leader.streamId, ops: tabs })
    expect(messageOf(await watcher.stream.nextEvent()).peers).toHaveLength(3)

    // The leader tab closes; the next one opens its own stream and carries the same tabs (less the one that closed).
    leader.stream.close()
    await new Promise((resolve) => setTimeout(resolve, 300))
    const next = await openStream(zuno.url, '')
    await presence(zuno.url, '', { streamId: next.streamId, ops: tabs.slice(1) })
    const whole = messageOf(await next.stream.nextEvent())
    expect(whole.peers?.map((peer) => peer.state).sort()).toEqual(['t1', 't2', 't3', 'w'])
    // The watcher hears nothing until the grace ends: then only t1, which no stream took, leaves.
    expect(await watcher.stream.drainEvents(900)).toEqual([])
    const left = messageOf(await watcher.stream.nextEvent(2000))
    expect(left.left).toHaveLength(1)
    expect(await watcher.stream.drainEvents(300)).toEqual([])
  })

  it('a stream that stops sending (a half-open connection) loses its tabs after timeoutMs; a heartbeat keeps them', async () => {
    const zuno = await startZuno({ handler: { presence: { timeoutMs: 1200 } } })
    cleanups.push(() => zuno.close())
    const watcher = await openStream(zuno.url, '')
    const quiet = await openStream(zuno.url, '')
    const beating = await openStream(zuno.url, '')
    await presence(zuno.url, '', { streamId: watcher.streamId, ops: [{ tab: tabKey('w'), room: 'doc:1', state: 'w' }] })
    const quietId = (await presence(zuno.url, '', { streamId: quiet.streamId, ops: [{ tab: tabKey('q'), room: 'doc:1', state: 'q' }] })).body.peers?.[tabKey('q')]
    await presence(zuno.url, '', { streamId: beating.streamId, ops: [{ tab: tabKey('b'), room: 'doc:1', state: 'b' }] })
    await watcher.stream.drainEvents(150)
    const beat = setInterval(() => {
      for (const { streamId } of [watcher, beating]) void presence(zuno.url, '', { streamId, ops: [] })
    }, 400)
    cleanups.push(() => clearInterval(beat))
    const started = Date.now()
    const left = messageOf(await watcher.stream.nextEvent(4000))
    // Within timeoutMs and one sweep (1 s) of its last request.
    expect(Date.now() - started).toBeLessThan(1200 + 1000 + 300)
    expect(left.left).toEqual([quietId])
    expect(await watcher.stream.drainEvents(1500)).toEqual([])
  })

  it('a revoked principal’s tabs leave the room at once, and its stream hears revoked', async () => {
    const { members, handler } = roomsHandler()
    const zuno = await startZuno({ handler })
    cleanups.push(() => zuno.close())
    const ada = await openStream(zuno.url, 'ada')
    const bob = await openStream(zuno.url, 'bob')
    const adaId = (await presence(zuno.url, 'ada', { streamId: ada.streamId, ops: [{ tab: tabKey('a'), room: 'room:1', state: 1 }] })).body.peers?.[tabKey('a')]
    await presence(zuno.url, 'bob', { streamId: bob.streamId, ops: [{ tab: tabKey('b'), room: 'room:1', state: 1 }] })
    await bob.stream.drainEvents(150)
    await ada.stream.drainEvents(50)
    members.get('room:1')?.delete('ada')
    await zuno.universe.revalidate('ada')
    expect(messageOf(await bob.stream.nextEvent())).toEqual({ room: 'room:1', left: [adaId] })
    const revoked = await ada.stream.nextEvent()
    expect([revoked.event, JSON.parse(revoked.data as string)]).toEqual(['revoked', { stores: ['room:1'] }])
    expect(await presence(zuno.url, 'ada', { streamId: ada.streamId, ops: [{ tab: tabKey('a'), room: 'room:1', state: 2 }] })).toMatchObject({ status: 200, body: { refused: { 'room:1': { error: 'forbidden' } } } })
  })

  it('two instances on one storage: each sees the other’s peers join, change and leave; a request for a stream held by the other goes there', async () => {
    const storage = createMemoryStorage()
    const first = await serveUniverse(createUniverse({ storage, allowStore: () => true }))
    const second = await serveUniverse(createUniverse({ storage, allowStore: () => true }))
    cleanups.push(() => first.close(), () => second.close(), () => storage.close())
    const a = await openStream(first.url, '')
    const b = await openStream(second.url, '')
    const aId = (await presence(first.url, '', { streamId: a.streamId, ops: [{ tab: tabKey('a'), room: 'doc:1', state: 'a' }] })).body.peers?.[tabKey('a')]
    await a.stream.nextEvent()
    // B joins through the first instance: routed to the second, which holds its stream.
    const routed = await presence(first.url, '', { streamId: b.streamId, ops: [{ tab: tabKey('b'), room: 'doc:1', state: 'b' }] })
    expect(routed.status).toBe(200)
    const bId = routed.body.peers?.[tabKey('b')]
    expect(messageOf(await b.stream.nextEvent()).peers?.map((peer) => peer.id).sort()).toEqual([aId, bId].sort())
    await until(async () => {
      const events = await a.stream.drainEvents(50)
      return events.some((frame) => messageOf(frame).peers?.some((peer) => peer.id === bId) === true)
    })
    await presence(second.url, '', { streamId: b.streamId, ops: [{ tab: tabKey('b'), room: 'doc:1', leave: true }] })
    const left = messageOf(await a.stream.nextEvent())
    expect(left.left).toEqual([bId])
  })

  it('a lone instance publishes no tick’s changes on the bus; once another is heard it does, and each sees the other’s peers', async () => {
    const storage = createMemoryStorage()
    cleanups.push(() => storage.close())
    const published: Array<{ type: string; whole?: boolean }> = []
    cleanups.push(storage.bus!.subscribe((message) => published.push((JSON.parse(message) as { signal: { type: string; whole?: boolean } }).signal)))
    const ticks = () => published.filter((signal) => signal.type === 'presence' && signal.whole !== true).length
    const first = await serveUniverse(createUniverse({ storage, allowStore: () => true }))
    cleanups.push(() => first.close())
    const a = await openStream(first.url, '')
    const move = (state: number) => presence(first.url, '', { streamId: a.streamId, ops: [{ tab: tabKey('a'), room: 'doc:1', state }] })
    const aId = (await move(0)).body.peers?.[tabKey('a')]
    for (let state = 1; state <= 5; state++) {
      await move(state)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await a.stream.drainEvents(100)
    expect(ticks()).toBe(0)

    // A second instance asks for the others' peers as it starts: the first answers, and publishes from then on.
    const second = await serveUniverse(createUniverse({ storage, allowStore: () => true }))
    cleanups.push(() => second.close())
    const b = await openStream(second.url, '')
    const bId = (await presence(second.url, '', { streamId: b.streamId, ops: [{ tab: tabKey('b'), room: 'doc:1', state: 'b' }] })).body.peers?.[tabKey('b')]
    expect(messageOf(await b.stream.nextEvent())).toMatchObject({ whole: true, peers: expect.arrayContaining([{ id: aId, principal: '', state: 5 }]) })
    await until(async () => (await a.stream.drainEvents(50)).some((frame) => messageOf(frame).peers?.some((peer) => peer.id === bId) === true))
    await move(6)
    await until(async () => (await b.stream.drainEvents(50)).some((frame) => messageOf(frame).peers?.some((peer) => peer.id === aId && peer.state === 6) === true))
    expect(ticks()).toBeGreaterThan(0)
  })

  it('an instance that missed the answer to its presenceSync tells its peers, whole, the first time it hears another', async () => {
    const storage = createMemoryStorage()
    cleanups.push(() => storage.close())
    // The bus loses every whole message while `losing` (a subscription not yet live on Redis).
    const bus = storage.bus!
    let losing = false
    ;(storage as { bus: typeof bus }).bus = {
      publish: (message) => (losing && (JSON.parse(message) as { signal: { whole?: boolean } }).signal.whole === true ? undefined : bus.publish(message)),
      subscribe: (listener, lost) => bus.subscribe(listener, lost),
    }
    const first = await serveUniverse(createUniverse({ storage, allowStore: () => true }))
    cleanups.push(() => first.close())
    const a = await openStream(first.url, '')
    const aId = (await presence(first.url, '', { streamId: a.streamId, ops: [{ tab: tabKey('a'), room: 'doc:1', state: 0 }] })).body.peers?.[tabKey('a')]
    await a.stream.drainEvents(100)
    losing = true
    const second = await serveUniverse(createUniverse({ storage, allowStore: () => true }))
    cleanups.push(() => second.close())
    const b = await openStream(second.url, '')
    const bId = (await presence(second.url, '', { streamId: b.streamId, ops: [{ tab: tabKey('b'), room: 'doc:1', state: 'b' }] })).body.peers?.[tabKey('b')]
    // The first's answer was lost: the second shows only its own.
    expect(messageOf(await b.stream.nextEvent())).toEqual({ room: 'doc:1', whole: true, peers: [{ id: bId, principal: '', state: 'b' }] })
    losing = false
    // The first's next change is the first the second hears of it: the second then tells it everything.
    await presence(first.url, '', { streamId: a.streamId, ops: [{ tab: tabKey('a'), room: 'doc:1', state: 1 }] })
    await until(async () => (await b.stream.drainEvents(50)).some((frame) => messageOf(frame).peers?.some((peer) => peer.id === aId && peer.state === 1) === true), 1000)
    await until(async () => (await a.stream.drainEvents(50)).some((frame) => messageOf(frame).peers?.some((peer) => peer.id === bId) === true), 1000)
  })
})
