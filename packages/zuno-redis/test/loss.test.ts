/**
 * Redis losing data under running instances: a FLUSHDB (a restart without persistence) and a
 * rolled-back Stream (a failover to a lagging replica). Nothing acknowledged is missing from the
 * Stream, every instance moves to one new epoch, clients resync by snapshot, no event id is reused.
 */
import { describe, expect, it } from 'vitest'
import { newClientId, parseEventId } from 'zuno'
import { writerTag } from 'zuno/server'
import { createRedisStorage } from '../src/index'
import { openRawStream, type RawStream, type SseFrame } from '../../zuno/test/support/sseReader'
import { until } from '../../zuno/test/support/until'
import { redisAvailable } from './redisAvailable'
import { cleanups, type Instance, namespace, RawClient, redisClient, sleep, startInstance, state } from './support'

const haveRedis = await redisAvailable()
/** FLUSHDB wipes a whole db: this one is for these tests alone. */
const DB9 = 'redis://127.0.0.1:6379/9'

/** Opens a raw SSE stream and waits for its first event. */
async function stream(url: string, lastEventId?: string): Promise<{ stream: RawStream; first: SseFrame }> {
  const opened = await openRawStream(`${url}/sse?v=2`, lastEventId === undefined ? {} : { 'last-event-id': lastEventId })
  cleanups.push(() => opened.close())
  return { stream: opened, first: await opened.nextEvent() }
}

/** Reads frames until an event named `name`; fails after `timeoutMs`. */
async function nextNamed(s: RawStream, name: string, timeoutMs = 10_000): Promise<SseFrame> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const frame = await s.nextEvent(Math.max(1, deadline - Date.now()))
    if (frame.event === name) return frame
  }
}

/**
 * Every event id served by an instance, with its content, across resyncs: a stream reopened
 * after each end from the last id it had.
 */
function recordIds(url: string, seen: Map<string, string>, reused: string[]): () => void {
  let stopped = false
  void (async () => {
    let last: string | undefined
    while (!stopped) {
      let s: RawStream
      try {
        s = await openRawStream(`${url}/sse?v=2`, last === undefined ? {} : { 'last-event-id': last })
      } catch {
        await sleep(50)
        continue
      }
      try {
        while (!stopped) {
          const frame = await s.nextEvent(60_000)
          if (frame.id !== undefined) last = frame.id
          if (frame.event !== 'state' || frame.id === undefined) continue
          const before = seen.get(frame.id)
          if (before !== undefined && before !== frame.data) reused.push(`${frame.id}: ${before} / ${frame.data}`)
          seen.set(frame.id, frame.data as string)
        }
      } catch {
        // ended (a resync): reopen from the last id
      } finally {
        s.close()
      }
    }
  })()
  return () => {
    stopped = true
  }
}

/** The Stream's entries as `storeKey|version|state|writer|opId` strings. */
async function streamContent(url: string, ns: string): Promise<Set<string>> {
  const entries = await redisClient(url).xrange(`{${ns}}:log`, '-', '+')
  return new Set(
    entries.map(([, fields]) => {
      const f: Record<string, string> = {}
      for (let i = 0; i < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string
      return `${f.k}|${f.v}|${f.s}|${f.w}|${f.o}`
    }),
  )
}

const ackContent = (ack: RawClient['acks'][number]) =>
  `${ack.request.storeKey}|${ack.body.version}|${JSON.stringify(ack.request.state)}|${writerTag(ack.request.clientId as string)}|${ack.request.opId}`

describe.skipIf(!haveRedis)('zuno-redis losing data', () => {
  it('FLUSHDB under two instances: nothing acknowledged after it is missing, one new epoch, clients resync, writes go on', async () => {
    const ns = namespace(DB9)
    const instances = (await Promise.all([startInstance(ns, { REDIS_URL: DB9 }), startInstance(ns, { REDIS_URL: DB9 })])) as [Instance, Instance]
    const { epoch: old, cursor } = await state(instances[0].url)
    const streams = await Promise.all(instances.map((instance) => stream(instance.url)))
    for (const { first } of streams) expect(first.event).toBe('snapshot')

    const writers = Array.from({ length: 4 }, (_, i) => new RawClient((instances[i % 2] as Instance).url))
    let writing = true
    const loops = writers.map(async (writer, i) => {
      while (writing) await writer.update(`w${i}`, (n) => ((n as number | undefined) ?? 0) + 1)
    })
    await sleep(300)
    await redisClient(DB9).flushdb()
    const flushedAt = Date.now()
    await sleep(1500)
    writing = false
    await Promise.all(loops)

    // One new epoch, on both instances.
    await until(async () => {
      const [a, b] = await Promise.all(instances.map((instance) => state(instance.url)))
      return a?.epoch !== old && a?.epoch === b?.epoch
    }, 10_000)
    const { epoch } = await state(instances[0].url)
    expect(epoch).not.toBe(old)

    // Every write sent after the flush and acknowledged is in the Stream.
    const content = await streamContent(DB9, ns)
    const acked = writers.flatMap((writer) => writer.acks).filter((ack) => ack.sentAt > flushedAt)
    expect(acked.length).toBeGreaterThan(10)
    for (const ack of acked) {
      expect(ack.request.epoch).toBe(epoch)
      expect(content.has(ackContent(ack))).toBe(true)
    }

    // Each instance's SSE client is told to resync, and its resume gets the new epoch's snapshot.
    for (const [i, { stream: s }] of streams.entries()) {
      await nextNamed(s, 'resync')
      const again = await stream((instances[i] as Instance).url, cursor)
      expect(again.first.event).toBe('snapshot')
      expect(parseEventId(again.first.id as string)?.epoch).toBe(epoch)
    }

    // New writes work on both, in the new epoch.
    for (const instance of instances) {
      const client = new RawClient(instance.url)
      const { answer } = await client.update('counter', (n) => ((n as number | undefined) ?? 0) + 1)
      expect(answer.status).toBe(200)
    }
    await until(async () => (await state(instances[1].url)).stores.counter?.version === 2)
  }, 60_000)

  it('a rolled-back Stream under a running pair: detected, a new epoch, no event id reused with other content', async () => {
    const ns = namespace()
    const instances = (await Promise.all([startInstance(ns), startInstance(ns)])) as [Instance, Instance]
    const seen = new Map<string, string>()
    const reused: string[] = []
    for (const instance of instances) cleanups.push(recordIds(instance.url, seen, reused))
    const { epoch: first } = await state(instances[0].url)
    const writer = new RawClient(instances[0].url)
    for (let i = 0; i < 10; i++) await writer.update('counter', (n) => (n as number) + 1)
    await until(() => seen.has(`${first}-10`))
    await until(async () => (await state(instances[1].url)).cursor === `${first}-10`)

    // The tail of the Stream and the seq roll back, as on a replica that lagged by three events.
    const redis = redisClient()
    await redis.xdel(`{${ns}}:log`, '0-8', '0-9', '0-10')
    await redis.set(`{${ns}}:seq`, 7)
    // A write right away, through the other instance, with the epoch the client knows.
    const other = new RawClient(instances[1].url)
    other.epoch = first
    other.known.set('counter', { version: 10, state: 10 })
    const { answer, request } = await other.update('counter', (n) => (n as number) + 1)
    expect(answer.body).toMatchObject({ version: 11, state: 11 })
    const { epoch: second } = await state(instances[1].url)
    expect(second).not.toBe(first)
    // Refused as of another epoch first (nothing written), then accepted in the new one.
    expect(request.epoch).toBe(second)
    await until(async () => (await state(instances[0].url)).epoch === second)

    // seq gone: found by the follow loops, with no write to trip on it.
    await redis.del(`{${ns}}:seq`)
    await until(async () => {
      const [a, b] = await Promise.all(instances.map((instance) => state(instance.url)))
      return a?.epoch !== second && a?.epoch === b?.epoch
    }, 10_000)
    const { epoch: third } = await state(instances[0].url)
    writer.url = instances[1].url
    for (let i = 0; i < 5; i++) await writer.update('counter', (n) => (n as number) + 1)
    await until(() => [...seen.keys()].filter((id) => id.startsWith(`${third}-`)).length === 5)

    expect(reused).toEqual([])
    // Ids of the new epochs continue past every id the Stream ever gave.
    const seqs = (epoch: string) => [...seen.keys()].filter((id) => id.startsWith(`${epoch}-`)).map((id) => parseEventId(id)?.seq as number)
    expect(Math.min(...seqs(second))).toBeGreaterThan(10)
    expect(Math.min(...seqs(third))).toBeGreaterThan(Math.max(...seqs(second)))
    for (const instance of instances) {
      await until(async () => JSON.stringify((await state(instance.url)).stores.counter) === JSON.stringify({ version: 16, state: 16 }))
    }
  }, 60_000)

  it('a failover to a lagging replica (keys restored from three events back): a new epoch, no event id reused with other content', async () => {
    const ns = namespace()
    const instances = (await Promise.all([startInstance(ns), startInstance(ns)])) as [Instance, Instance]
    const seen = new Map<string, string>()
    const reused: string[] = []
    for (const instance of instances) cleanups.push(recordIds(instance.url, seen, reused))
    const { epoch: first } = await state(instances[0].url)
    const writer = new RawClient(instances[0].url)
    const redis = redisClient()
    const keys = [`{${ns}}:epoch`, `{${ns}}:seq`, `{${ns}}:log`, `{${ns}}:stores`, `{${ns}}:s:counter`]
    let replica: Array<Buffer | null> = []
    for (let i = 0; i < 10; i++) {
      await writer.update('counter', (n) => (n as number) + 1)
      if (i === 6) replica = await Promise.all(keys.map((key) => redis.dumpBuffer(key)))
    }
    await until(() => seen.has(`${first}-10`))
    await until(async () => (await state(instances[1].url)).cursor === `${first}-10`)

    // The failover: every key as the replica had it, same epoch id, seq 7, the Stream's last id 7.
    await Promise.all(keys.map((key, i) => redis.restore(key, 0, replica[i] as Buffer, 'REPLACE')))
    expect(await redis.get(`{${ns}}:seq`)).toBe('7')
    // A client that saw version 7 writes at once through the other instance, in the epoch it knows.
    const lagging = new RawClient(instances[1].url)
    lagging.epoch = first
    lagging.known.set('counter', { version: 7, state: 7 })
    const { answer, request } = await lagging.update('counter', () => 'after the failover')
    expect(answer.body).toMatchObject({ version: 8, state: 'after the failover' })
    // Never accepted in the epoch the replica rolled back: that would reuse the id `${first}-8`.
    expect(request.epoch).not.toBe(first)
    await until(async () => {
      const [a, b] = await Promise.all(instances.map((instance) => state(instance.url)))
      return a?.epoch !== first && a?.epoch === b?.epoch
    }, 10_000)
    const { epoch: second } = await state(instances[0].url)
    await until(() => seen.has(`${second}-8`))
    expect(reused).toEqual([])
    expect(seen.get(`${first}-8`)).not.toContain('after the failover')
    for (const instance of instances) {
      await until(async () => (await state(instance.url)).stores.counter?.state === 'after the failover')
    }
  }, 60_000)

  it('an instance that started after the Stream lost its tail: the refused XADD moves to a new epoch, ids go on past the lost ones', async () => {
    const ns = namespace()
    const redis = redisClient()
    const first = createRedisStorage({ namespace: ns })
    cleanups.push(() => first.close())
    const { epoch } = await first.load()
    const clientId = newClientId()
    for (let i = 0; i < 3; i++) {
      const write = { storeKey: 'counter', baseVersion: i, state: i + 1 }
      await first.commit({ principal: '', clientId, opId: i + 1, digest: `d${i}`, epoch, write })
    }
    await first.close()
    // The last event and seq roll back; the Stream still remembers it gave id 0-3.
    await redis.xdel(`{${ns}}:log`, '0-3')
    await redis.set(`{${ns}}:seq`, 2)
    const second = createRedisStorage({ namespace: ns })
    cleanups.push(() => second.close())
    const image = await second.load()
    expect(image).toMatchObject({ epoch, seq: 2 })
    const op = { principal: '', clientId: newClientId(), opId: 1, digest: 'x', epoch, write: { storeKey: 'counter', baseVersion: 3, state: 4 } }
    const refused = await second.commit(op)
    expect(refused).toMatchObject({ type: 'epoch_changed' })
    const next = (refused as { epoch: string }).epoch
    expect(next).not.toBe(epoch)
    expect(await second.commit({ ...op, epoch: next })).toMatchObject({ type: 'accepted', event: { seq: 4, id: `${next}-4` } })
  })
})
