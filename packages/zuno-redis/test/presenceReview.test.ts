/**
 * Presence on Redis under a fresh-context review's attacks (issue #18): the test reproduced a
 * finding and failed until its fix. Two instances in this process on one Redis namespace, real
 * HTTP on 127.0.0.1, the real `eventsource` client, real `CLIENT KILL TYPE pubsub`.
 */
import { EventSource } from 'eventsource'
import { describe, expect, it } from 'vitest'
import { connect, type ReplicaOptions } from 'zuno'
import type { NodeHandlerOptions } from 'zuno/server'
import { until } from '../../zuno/test/support/until'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace, openUniverse, redisClient, serveOverHttp, sleep } from './support'

const haveRedis = await redisAvailable()

async function instance(ns: string, options: NodeHandlerOptions) {
  const universe = openUniverse(ns, {}, { stores: { counter: 0 }, allowStore: () => true })
  await universe.ready
  const { url } = await serveOverHttp(universe, options)
  return { url }
}

function replicaOf(url: string, options: Partial<ReplicaOptions> = {}) {
  const replica = connect({ url, EventSource, stores: [], ...options })
  cleanups.push(() => replica.close())
  return replica
}

describe.skipIf(!haveRedis)('presence on Redis, as a review attacked it', () => {
  it('R18-7: a routed POST /presence lost while pub/sub reconnects (answered unknown_stream for a live stream) makes the replica open a new stream, and presence goes on', async () => {
    const ns = namespace()
    const options = { presence: { timeoutMs: 3000 } }
    const first = await instance(ns, options)
    const second = await instance(ns, options)
    // Ada's stream is on the first instance; a round-robin balancer sends her POST /presence to the second (no sticky sessions, as documented).
    const statuses: number[] = []
    const toSecond: typeof fetch = async (input, init) => {
      if (!String(input).endsWith('/presence')) return fetch(input, init)
      const response = await fetch(`${second.url}/presence`, init)
      statuses.push(response.status)
      return response
    }
    const ada = replicaOf(first.url, { fetch: toSecond })
    const adaRoom = ada.presence('doc:1', 'ada 0')
    const watcher = replicaOf(first.url).presence('doc:1', 'watcher')
    await until(() => watcher.others().length === 1 && adaRoom.others().length === 1, 10_000)

    // The operator's Redis drops pub/sub clients for a moment (a failover, CLIENT KILL TYPE pubsub) while Ada moves.
    const admin = redisClient()
    let killing = true
    const killer = (async () => {
      while (killing) {
        await admin.client('KILL', 'TYPE', 'pubsub').catch(() => {})
        await sleep(20)
      }
    })()
    adaRoom.set('ada 1')
    await sleep(3500)
    killing = false
    await killer
    // Redis is fine again; Ada's stream never ended. She moves again and again.
    await sleep(1500)
    for (let i = 2; i < 6; i++) {
      adaRoom.set(`ada ${i}`)
      await sleep(300)
    }
    await sleep(2000)
    expect(ada.status.get()).toBe('connected')
    // the watcher sees Ada's latest value. (It failed so before its fix.)
    expect(watcher.others().map((peer) => peer.state)).toEqual(['ada 5'])
  }, 60_000)
})
