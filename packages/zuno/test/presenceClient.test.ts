/**
 * `replica.presence(room)` against a real server on 127.0.0.1 with the real `eventsource` client:
 * replicas see each other join, move and leave, with the principal the server authenticated;
 * values are sent at most once a tick; broadcasts; a closed replica leaves at once; tabs carry
 * their presence on the leader's one stream, each its own, across a leader handoff and a crash.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { Principal } from '../src/server/index'
import { SimBrowser } from './simulation/simBrowser'
import { crashableChannel } from './support/crashableChannel'
import { browserTabs, realClock, replicaOpener, statesOf } from './support/presenceReplicas'
import { until } from './support/until'
import { htmlPage, startProxy, startZuno } from './support/zunoBehindProxy'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const replicaOf = replicaOpener(cleanups)

/** A server whose principal is the `?token=` (the stream) or the bearer token (requests). */
const byToken = {
  authenticate: (request: { header(name: string): string | null | undefined; query?: URLSearchParams }) => {
    const bearer = request.header('authorization')?.replace(/^Bearer /, '')
    const token = bearer ?? (request as { query?: URLSearchParams }).query?.get('token') ?? undefined
    return token === undefined ? undefined : ({ id: token } satisfies Principal)
  },
}

describe('replica.presence', () => {
  it('two replicas see each other join, move and leave, with the principals the server authenticated', async () => {
    const zuno = await startZuno({ handler: byToken })
    cleanups.push(() => zuno.close())
    const ada = replicaOf(zuno.url, { token: () => 'ada' })
    const bob = replicaOf(zuno.url, { token: () => 'bob' })
    const adaRoom = ada.presence('doc:1', { x: 0 })
    // Every list Ada is ever shown: never herself (her first event may overtake the answer naming her).
    const adaSaw: string[][] = []
    adaRoom.subscribe(() => adaSaw.push(adaRoom.others().map((peer) => peer.principal)))
    const bobRoom = bob.presence('doc:1', { x: 100 })
    await until(() => adaRoom.others().length === 1 && bobRoom.others().length === 1)
    expect(adaRoom.others()).toEqual([{ id: expect.any(String), principal: 'bob', state: { x: 100 } }])
    expect(bobRoom.others()[0]?.principal).toBe('ada')
    // The same array until something changes (what useSyncExternalStore needs).
    expect(adaRoom.others()).toBe(adaRoom.others())

    let heard = 0
    bobRoom.subscribe(() => heard++)
    for (let x = 1; x <= 30; x++) adaRoom.set({ x })
    expect(adaRoom.me()).toEqual({ x: 30 })
    await until(() => (statesOf(bobRoom)[0] as { x: number }).x === 30)
    // Thirty sets in one turn went out as one value.
    expect(heard).toBeLessThanOrEqual(2)
    adaRoom.set((current) => ({ x: current.x + 1 }))
    await until(() => (statesOf(bobRoom)[0] as { x: number }).x === 31)

    expect(adaSaw.flat().filter((principal) => principal === 'ada')).toEqual([])
    adaRoom.leave()
    await until(() => bobRoom.others().length === 0)
  })

  it('sends a replica’s values at most about 20 times a second, the latest last', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const mover = replicaOf(zuno.url)
    const watcher = replicaOf(zuno.url)
    const moving = mover.presence('doc:1', 0)
    const watching = watcher.presence<number | null>('doc:1', null)
    await until(() => watching.others().length === 1)
    const posts = () => zuno.seen.filter((seen) => seen.path === '/zuno/presence').length
    const before = posts()
    const started = Date.now()
    while (Date.now() - started < 1000) {
      moving.set(Date.now() - started)
      await sleep(2)
    }
    moving.set(-1)
    await until(() => statesOf(watching)[0] === -1)
    const sent = posts() - before
    // The bound is the point (one request a tick, whatever the rate of sets); a loaded machine may send fewer.
    expect(sent).toBeGreaterThanOrEqual(5)
    expect(sent).toBeLessThanOrEqual(24)
  })

  it('sends each change of tabs moving at 20 a second at once: no tab waits for another, none drifts a period behind', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const tab = browserTabs(replicaOf, zuno.url)
    const tabs = ['left', 'right'].map((name) => tab(name))
    const rooms = tabs.map((tab) => tab.presence<{ made: number } | null>('doc:1', null))
    const watching = replicaOf(zuno.url).presence<{ made: number } | null>('doc:1', null)
    await until(() => watching.others().length === 2, 5000)
    // How long each value took from its tab's set to the watcher (one process: one clock).
    const latencies: number[] = []
    const seen = new Set<number>()
    watching.subscribe(() => {
      for (const peer of watching.others()) {
        const made = peer.state?.made
        if (made === undefined || seen.has(made)) continue
        seen.add(made)
        latencies.push(performance.now() - made)
      }
    })
    // Each tab on a 50 ms beat (a timer late for one set makes the next one early), the second
    // half a period after the first: one stream carries both.
    let sets = 0
    const started = performance.now()
    const moving = rooms.map((room, i) =>
      (async () => {
        for (let beat = 0; beat < 30; beat++) {
          await sleep(started + 25 * i + 50 * beat - performance.now())
          room.set({ made: performance.now() })
          sets++
        }
      })(),
    )
    await Promise.all(moving)
    await sleep(300)
    latencies.sort((a, b) => a - b)
    // Held for a period (by the other tab's request or by a pace that slips behind), the median would be 25 ms or more.
    expect(latencies[Math.floor(latencies.length / 2)]).toBeLessThan(20)
    expect(latencies.length).toBeGreaterThanOrEqual(sets * 0.8)
  })

  it('broadcasts to the others in the room, not to itself, in order', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const a = replicaOf(zuno.url).presence('doc:1', 'a')
    const b = replicaOf(zuno.url).presence('doc:1', 'b')
    await until(() => a.others().length === 1 && b.others().length === 1)
    const heardByB: unknown[] = []
    const heardByA: unknown[] = []
    b.onBroadcast((data, from) => heardByB.push([data, from.id === a.others()[0]?.id ? 'b?' : from.id === b.others()[0]?.id ? 'a' : '?']))
    a.onBroadcast((data) => heardByA.push(data))
    a.broadcast({ emoji: '🎉' })
    a.broadcast('second')
    await until(() => heardByB.length === 2)
    expect(heardByB).toEqual([
      [{ emoji: '🎉' }, 'a'],
      ['second', 'a'],
    ])
    await sleep(100)
    expect(heardByA).toEqual([])
    expect(() => a.broadcast('x'.repeat(3000))).toThrow(expect.objectContaining({ code: 'presence_too_large' }))
    expect(() => a.set('x'.repeat(3000))).toThrow(expect.objectContaining({ code: 'presence_too_large' }))
  })

  it('keeps a broadcast whose request failed (a proxy’s 502, a lost answer) and sends it with the next', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    let failing = 0
    const proxy = await startProxy({ port: zuno.port }, (req, body) => {
      if (!req.url?.startsWith('/zuno/presence') || !body.includes('"broadcast"') || failing === 0) return undefined
      failing -= 1
      // The first one never reaches the server (502); the second is cut off with no answer.
      return failing === 1 ? { status: 502, body: htmlPage(502, 'Bad Gateway') } : { status: 0 }
    })
    cleanups.push(() => proxy.close())
    const sender = replicaOf(proxy.url).presence('doc:1', 'sender')
    const receiver = replicaOf(zuno.url).presence('doc:1', 'receiver')
    await until(() => receiver.others().length === 1 && sender.others().length === 1)
    const heard: unknown[] = []
    receiver.onBroadcast((data) => heard.push(data))
    failing = 2
    sender.broadcast('first')
    sender.broadcast('second')
    await until(() => heard.length >= 2, 8000)
    expect(heard).toEqual(['first', 'second'])
  })

  it('a replica that closes leaves at once, without waiting for the server to notice', async () => {
    const zuno = await startZuno({ handler: { presence: { graceMs: 10_000, timeoutMs: 60_000 } } })
    cleanups.push(() => zuno.close())
    const leaving = replicaOf(zuno.url)
    leaving.presence('doc:1', 'leaving')
    const staying = replicaOf(zuno.url).presence('doc:1', 'staying')
    await until(() => staying.others().length === 1)
    const closedAt = Date.now()
    leaving.close()
    await until(() => staying.others().length === 0, 2000)
    expect(Date.now() - closedAt).toBeLessThan(1000)
  })

  it('a page that hides (pagehide) leaves at once, and shows again when it comes back from the back-forward cache', async () => {
    const zuno = await startZuno({ handler: { presence: { graceMs: 10_000, timeoutMs: 60_000 } } })
    cleanups.push(() => zuno.close())
    const watching = replicaOf(zuno.url).presence('doc:1', 'watcher')
    // The page the other replica runs in: a window that sends page events.
    const page = new EventTarget()
    ;(globalThis as { window?: unknown }).window = page
    cleanups.push(() => delete (globalThis as { window?: unknown }).window)
    const inPage = replicaOf(zuno.url, { tabs: false })
    delete (globalThis as { window?: unknown }).window
    inPage.presence('doc:1', 'in the page')
    await until(() => statesOf(watching).includes('in the page'))
    const hiddenAt = Date.now()
    page.dispatchEvent(new Event('pagehide'))
    await until(() => watching.others().length === 0, 2000)
    expect(Date.now() - hiddenAt).toBeLessThan(1000)
    page.dispatchEvent(Object.assign(new Event('pageshow'), { persisted: true }))
    await until(() => statesOf(watching).includes('in the page'))
  })

  it('a replica that closes while a request of its is on its way still leaves at once', async () => {
    const zuno = await startZuno({ handler: { presence: { graceMs: 10_000, timeoutMs: 60_000 } } })
    cleanups.push(() => zuno.close())
    let slow = false
    // Its presence requests take 500 ms once slow: one is still on its way when it closes, and its
    // goodbye reaches the server after the end of its stream.
    const slowFetch: typeof fetch = async (input, init) => {
      if (slow && String(input).endsWith('/presence')) await sleep(500)
      return fetch(input, init)
    }
    const leaving = replicaOf(zuno.url, { fetch: slowFetch })
    const room = leaving.presence('doc:1', 'leaving')
    const staying = replicaOf(zuno.url).presence('doc:1', 'staying')
    await until(() => staying.others().length === 1)
    slow = true
    room.set('moved')
    await sleep(120) // past the tick: the change is on its way
    const closedAt = Date.now()
    leaving.close()
    await until(() => staying.others().length === 0, 3000)
    expect(Date.now() - closedAt).toBeLessThan(1500)
  })

  it('shows a room the principal may not read as refused, and the others nothing of it', async () => {
    const zuno = await startZuno({ handler: { ...byToken, authorize: ({ principal, storeKey }: { principal: Principal | undefined; storeKey: string }) => storeKey !== 'secret' || principal?.id === 'ada' } })
    cleanups.push(() => zuno.close())
    const ada = replicaOf(zuno.url, { token: () => 'ada' }).presence('secret', 'ada')
    const eve = replicaOf(zuno.url, { token: () => 'eve' })
    const eveSecret = eve.presence('secret', 'eve')
    const eveOpen = eve.presence('doc:1', 'eve')
    await until(() => eveSecret.error() !== undefined)
    expect(eveSecret.error()?.code).toBe('forbidden')
    expect(eveOpen.error()).toBeUndefined()
    await sleep(200)
    expect(ada.others()).toEqual([])
    expect(eveSecret.others()).toEqual([])
    expect(() => eve.presence('not a key!', 0)).toThrow(expect.objectContaining({ code: 'invalid_store_key' }))
  })
})

describe('tabs and presence', () => {
  it('eight tabs of one browser are eight presences over one stream', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const tab = browserTabs(replicaOf, zuno.url)
    const tabs = Array.from({ length: 8 }, (_, i) => tab(`tab${i}`))
    const rooms = tabs.map((tab, i) => tab.presence('doc:1', `tab${i}`))
    const outside = replicaOf(zuno.url).presence('doc:1', 'outside')
    await until(() => outside.others().length === 8, 5000)
    expect(statesOf(outside).sort()).toEqual(['tab0', 'tab1', 'tab2', 'tab3', 'tab4', 'tab5', 'tab6', 'tab7'])
    for (const [i, room] of rooms.entries()) {
      await until(() => room.others().length === 8)
      expect(statesOf(room)).not.toContain(`tab${i}`)
    }
    // One stream for the browser, one for the outside replica.
    expect(zuno.seen.filter((seen) => seen.path === '/zuno/sse')).toHaveLength(2)
    rooms[5]?.set('moved')
    await until(() => statesOf(outside).includes('moved'))
    await until(() => rooms.every((room, i) => i === 5 || statesOf(room).includes('moved')))
  })

  it('a tab that joins a room its browser is in already sees everyone there, whichever tab leads', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const tab = browserTabs(replicaOf, zuno.url)
    const leader = tab('leader')
    await until(() => leader.status.get() === 'connected')
    leader.presence('doc:1', 'leader')
    const outside = replicaOf(zuno.url).presence('doc:1', 'outside')
    await until(() => outside.others().length === 1)
    // A follower joins the room later, on the stream that is in it already.
    const follower = tab('follower')
    const late = follower.presence('doc:1', 'follower')
    await until(() => outside.others().length === 2)
    await until(() => late.others().length === 2, 2000)
    expect(statesOf(late).sort()).toEqual(['leader', 'outside'])
    // The leader joins a room its follower is in already.
    const followerRoom = follower.presence('doc:2', 'follower')
    const outside2 = replicaOf(zuno.url).presence('doc:2', 'outside')
    await until(() => followerRoom.others().length === 1 && outside2.others().length === 1)
    const leaderRoom = leader.presence('doc:2', 'leader')
    await until(() => outside2.others().length === 2)
    await until(() => leaderRoom.others().length === 2, 2000)
    expect(statesOf(leaderRoom).sort()).toEqual(['follower', 'outside'])
    await until(() => followerRoom.others().length === 2)
    expect(statesOf(followerRoom).sort()).toEqual(['leader', 'outside'])
  })

  it('a leader handoff shows no leave or join of the tabs that stay; the tab that closed leaves at once', async () => {
    const zuno = await startZuno({ handler: { presence: { graceMs: 1000 } } })
    cleanups.push(() => zuno.close())
    const tab = browserTabs(replicaOf, zuno.url)
    const first = tab('first')
    await until(() => first.status.get() === 'connected')
    first.presence('doc:1', 'first')
    const second = tab('second')
    second.presence('doc:1', 'second')
    const third = tab('third')
    third.presence('doc:1', 'third')
    const outside = replicaOf(zuno.url).presence('doc:1', 'outside')
    await until(() => outside.others().length === 3)
    const seenCounts: number[] = []
    outside.subscribe(() => seenCounts.push(outside.others().length))
    first.close()
    await until(() => outside.others().length === 2, 2000)
    await until(() => zuno.seen.filter((seen) => seen.path === '/zuno/sse').length === 3)
    // Past the grace (1 s) and the sweep after it: a tab the new leader did not take over would be gone.
    await sleep(2500)
    // Only the tab that closed went; the two others were never shown leaving and joining again.
    expect(statesOf(outside).sort()).toEqual(['second', 'third'])
    expect(seenCounts.every((count) => count >= 2)).toBe(true)
  })

  it('a follower tab that crashes (no goodbye) leaves once its lock is free', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const browser = new SimBrowser(realClock, () => 1)
    const leader = replicaOf(zuno.url, { tabs: true, BroadcastChannel: browser.channelFor(), locks: browser.locksFor('leader') })
    await until(() => leader.status.get() === 'connected')
    leader.presence('doc:1', 'leader')
    const crashable = crashableChannel(browser)
    const follower = replicaOf(zuno.url, { tabs: true, BroadcastChannel: crashable.Channel, locks: browser.locksFor('follower') })
    follower.presence('doc:1', 'follower')
    const outside = replicaOf(zuno.url).presence('doc:1', 'outside')
    await until(() => outside.others().length === 2)
    crashable.crash()
    follower.close()
    await until(() => outside.others().length === 1, 2000)
    expect(statesOf(outside)).toEqual(['leader'])
  })
})
