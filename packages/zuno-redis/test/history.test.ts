/**
 * The history a Redis instance reads after its start (`recent()`), while another instance writes:
 * contiguous up to the loaded seq, and the follow goes on from there, nothing lost or twice.
 */
import { describe, expect, it } from 'vitest'
import type { CommittedEvent } from 'zuno/server'
import { createRedisStorage } from '../src/index'
import { until } from '../../zuno/test/support/until'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace } from './support'

const haveRedis = await redisAvailable()

describe.skipIf(!haveRedis)('the history read after a start, while another instance writes', () => {
  it('recent() ends exactly at the loaded seq, contiguous; the follow goes on from there: no event lost or twice', async () => {
    const ns = namespace()
    const writer = createRedisStorage({ namespace: ns })
    cleanups.push(() => writer.close())
    const { epoch } = await writer.load()
    let opId = 0
    let version = 0
    let going = true
    const writes = (async () => {
      while (going) {
        const outcome = await writer.commit({ principal: '', clientId: 'w', opId: ++opId, digest: `d${opId}`, epoch, write: { storeKey: 'doc', baseVersion: version, state: { opId, pad: 'x'.repeat(opId % 300) } } })
        if (outcome.type !== 'accepted') throw new Error(JSON.stringify(outcome))
        version = outcome.event.version
      }
    })()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const reader = createRedisStorage({ namespace: ns, recent: 50 })
    cleanups.push(() => reader.close())
    const image = await reader.load()
    const followed: CommittedEvent[] = []
    reader.onCommit((event) => followed.push(event))
    await new Promise((resolve) => setTimeout(resolve, 200))
    const recent = await reader.recent?.()
    await new Promise((resolve) => setTimeout(resolve, 200))
    going = false
    await writes
    await until(() => (followed.at(-1)?.seq ?? 0) >= version)
    const seqs = [...(recent ?? []), ...followed].map((event) => event.seq)
    expect(recent?.length).toBe(50)
    expect(recent?.at(-1)?.seq).toBe(image.seq)
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => image.seq - 49 + i))
    for (const event of [...(recent ?? []), ...followed]) expect((event.state as { opId: number }).opId).toBe(event.seq)
  })
})
