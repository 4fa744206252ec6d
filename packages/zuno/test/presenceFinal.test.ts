/**
 * Presence under a third fresh-context review, of issue #18's pacing and numbered events: each test
 * was a finding and failed until its fix. Real servers on 127.0.0.1, real replicas over the real
 * `eventsource` client; the stand-ins are transports (a proxy, a fetch that loses answers).
 */
import { createServer, type Socket, connect as netConnect } from 'node:net'
import { describe, expect, it } from 'vitest'
import type { ReplicaOptions } from '../src/index'
import { presenceTestKit, sleep, statesOf } from './support/presenceReplicas'
import { until } from './support/until'
import { startProxy, startZuno } from './support/zunoBehindProxy'

const { cleanups, replicaOf } = presenceTestKit()

/** Ada (on `adaUrl`, with `options`) and Bob (on `bobUrl`) in `doc:1`, each seeing the other; what Bob hears broadcast. */
async function adaAndBob(adaUrl: string, bobUrl: string, options: Partial<ReplicaOptions> = {}) {
  const adaRoom = replicaOf(adaUrl, options).presence('doc:1', 'ada')
  const bobRoom = replicaOf(bobUrl).presence('doc:1', 'bob')
  const heard: unknown[] = []
  bobRoom.onBroadcast((data) => heard.push(data))
  await until(() => bobRoom.others().length === 1 && adaRoom.others().length === 1)
  return { adaRoom, bobRoom, heard }
}

describe('presence, as a third review attacked it', () => {
  it('R18c-1: a server whose maxBodyBytes takes one value at a time gets one op a request, not 413 after 413', async () => {
    // Each value (~600 bytes) alone fits the server's 1200-byte bodies; two together do not.
    const zuno = await startZuno({ handler: { maxBodyBytes: 1200 } })
    cleanups.push(() => zuno.close())
    const statuses: number[] = []
    const counting: typeof fetch = async (input, init) => {
      const response = await fetch(input, init)
      if (String(input).endsWith('/presence')) statuses.push(response.status)
      return response
    }
    const bob = replicaOf(zuno.url)
    const bob1 = bob.presence('doc:1', 'bob')
    const bob2 = bob.presence('doc:2', 'bob')
    const ada = replicaOf(zuno.url, { fetch: counting })
    const big = 'x'.repeat(600)
    ada.presence('doc:1', { v: big })
    ada.presence('doc:2', { v: big })
    let shown = false
    try {
      await until(() => bob1.others().length === 1 && bob2.others().length === 1, 6000)
      shown = true
    } catch {}
    await sleep(500)
    const refusedTooLarge = statuses.filter((status) => status === 413).length
    // Ada is shown in both rooms (split into one op per request), or refused once; not 413 again and again.
    expect({ shown, refusedTooLarge }).toEqual({ shown: true, refusedTooLarge: expect.any(Number) })
    expect(refusedTooLarge).toBeLessThan(20)
    expect(statesOf(bob1)).toEqual([{ v: big }])
  }, 20_000)

  it('R18c-2: an event whose answer was lost is not delivered twice when the server timed the tab out meanwhile (docs: "An event goes to the room once")', async () => {
    const zuno = await startZuno({ handler: { presence: { timeoutMs: 1200, graceMs: 300 } } })
    cleanups.push(() => zuno.close())
    let phase: 'normal' | 'lost' | 'over' = 'normal'
    let lostUntil = 0
    // Ada's network: the request with her event reaches the server but its answer is lost, then her
    // requests fail for a while (longer than the server's timeoutMs), then all is well again.
    const proxy = await startProxy({ port: zuno.port }, (req, body) => {
      const path = (req.url ?? '').split('?')[0]
      if (path !== '/zuno/presence') return undefined
      if (phase === 'normal' && body.includes('"broadcast"')) {
        phase = 'lost'
        lostUntil = Date.now() + 3000
        return { status: 0, afterForwarding: true }
      }
      if (phase === 'lost' && Date.now() < lostUntil) return { status: 0 }
      if (phase === 'lost') phase = 'over'
      return undefined
    })
    cleanups.push(() => proxy.close())
    const { adaRoom, bobRoom, heard } = await adaAndBob(proxy.url, zuno.url)
    adaRoom.broadcast({ n: 1 })
    // Bob hears it the first time (the request reached the server).
    await until(() => heard.length >= 1)
    // The network comes back and Ada is shown again.
    await until(() => phase === 'over' && bobRoom.others().length === 1, 15_000)
    await sleep(1000)
    expect(heard).toEqual([{ n: 1 }])
  }, 30_000)

  it('R18c-3: an event whose request failed while a new stream already sent a later event of the tab is still delivered (not skipped by seq)', async () => {
    const zuno = await startZuno({ handler: { presence: { timeoutMs: 1200, graceMs: 300 } } })
    cleanups.push(() => zuno.close())
    let release: (() => void) | undefined
    const released = new Promise<void>((resolve) => (release = resolve))
    let held = false
    // Ada's first request with an event hangs (a stalled connection) and fails without reaching the server.
    const stalling: typeof fetch = async (input, init) => {
      if (!held && String(input).endsWith('/presence') && String(init?.body).includes('"broadcast"')) {
        held = true
        await released
        throw new TypeError('fetch failed')
      }
      if (held && String(init?.body).includes('"seq":1')) resent += 1
      return fetch(input, init)
    }
    let resent = 0
    const { adaRoom, bobRoom, heard } = await adaAndBob(zuno.url, zuno.url, { fetch: stalling })
    adaRoom.broadcast({ n: 1 })
    // Ada's stream says nothing while the request hangs: the server times her tab out and ends the stream;
    // her replica opens another and shows her again.
    await until(() => bobRoom.others().length === 0, 10_000)
    await until(() => bobRoom.others().length === 1, 10_000)
    adaRoom.broadcast({ n: 2 })
    await until(() => heard.length >= 1, 10_000)
    // Now the stalled request fails: its event goes again, on the new stream.
    release?.()
    await sleep(3000)
    // It did go again (the server got it, a number below the tab's last, and skipped it).
    expect(resent).toBeGreaterThan(0)
    expect(heard).toContainEqual({ n: 1 })
    expect(heard).toContainEqual({ n: 2 })
  }, 40_000)

  it('R18c-4: an event sent while the tab\'s stream had just ended (a network blip) is delivered, not answered ok and dropped', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    // Ada's network: a TCP relay that can cut every connection and refuse new ones for a while.
    const sockets = new Set<Socket>()
    let blockedUntil = 0
    const relay = createServer((client) => {
      if (Date.now() < blockedUntil) return void client.destroy()
      const upstream = netConnect(zuno.port, '127.0.0.1')
      sockets.add(client).add(upstream)
      client.pipe(upstream).pipe(client)
      const end = () => {
        client.destroy()
        upstream.destroy()
        sockets.delete(client)
        sockets.delete(upstream)
      }
      client.on('error', end).on('close', end)
      upstream.on('error', end).on('close', end)
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => {
      for (const socket of sockets) socket.destroy()
      return new Promise((resolve) => relay.close(resolve))
    })
    const relayPort = (relay.address() as { port: number }).port
    const adaRoom = replicaOf(`http://127.0.0.1:${relayPort}/zuno`).presence('doc:1', 'ada')
    const bobRoom = replicaOf(zuno.url).presence('doc:1', 'bob')
    const heard: unknown[] = []
    bobRoom.onBroadcast((data) => heard.push(data))
    await until(() => bobRoom.others().length === 1 && adaRoom.others().length === 1)
    await sleep(300)
    // The blip: every connection cut, none for 1.5 s (within the server's 3 s grace); Ada sends an event in it.
    blockedUntil = Date.now() + 1500
    for (const socket of sockets) socket.destroy()
    await sleep(50)
    adaRoom.broadcast({ n: 1 })
    await sleep(4000)
    await until(() => bobRoom.others().length === 1)
    await sleep(1000)
    expect(heard).toEqual([{ n: 1 }])
  }, 30_000)
})
