/**
 * Presence across instances on Redis: server processes on one namespace, replicas (the real
 * `eventsource` client) on each. Joins, moves and leaves reach replicas on both; a replica of an
 * instance started later gets the room as it is; the peers of an instance killed with SIGKILL
 * leave within the presence timeout; a request for a stream held by the other instance goes there.
 */
import { EventSource } from 'eventsource'
import { describe, expect, it } from 'vitest'
import { connect, type PresenceRoom } from 'zuno'
import { until } from '../../zuno/test/support/until'
import { redisAvailable } from './redisAvailable'
import { cleanups, namespace, startInstance } from './support'

const haveRedis = await redisAvailable()

function replicaOf(url: string) {
  const replica = connect({ url, EventSource, stores: [] })
  cleanups.push(() => replica.close())
  return replica
}

const statesOf = <P>(room: PresenceRoom<P>) => room.others().map((peer) => peer.state)

describe.skipIf(!haveRedis)('presence across instances on Redis', () => {
  it('joins, moves and leaves reach replicas on both instances; an instance started later gets the room as it is', async () => {
    const ns = namespace()
    const first = await startInstance(ns)
    const second = await startInstance(ns)
    const a = replicaOf(first.url).presence('doc:1', 'a')
    const b = replicaOf(second.url).presence('doc:1', 'b')
    await until(() => statesOf(a).includes('b') && statesOf(b).includes('a'), 10_000)
    a.set('a moved')
    await until(() => statesOf(b).includes('a moved'))
    b.broadcast('hello from b')
    const heard: unknown[] = []
    a.onBroadcast((data) => heard.push(data))
    b.broadcast('again')
    await until(() => heard.includes('again'))

    // A third instance, started now: its replica finds the two already there.
    const third = await startInstance(ns)
    const c = replicaOf(third.url).presence('doc:1', 'c')
    await until(() => statesOf(c).sort().join() === ['a moved', 'b'].join(), 10_000)
    await until(() => statesOf(a).includes('c') && statesOf(b).includes('c'), 10_000)

    b.leave()
    await until(() => !statesOf(a).includes('b') && !statesOf(c).includes('b'))
  }, 60_000)

  it('the peers of an instance killed with SIGKILL leave the others within the presence timeout', async () => {
    const ns = namespace()
    const env = { PRESENCE_TIMEOUT_MS: '2000' }
    const surviving = await startInstance(ns, env)
    const doomed = await startInstance(ns, env)
    const watcher = replicaOf(surviving.url).presence('doc:1', 'watcher')
    replicaOf(doomed.url).presence('doc:1', 'doomed')
    await until(() => statesOf(watcher).includes('doomed'), 10_000)
    // Alive instances keep their peers: nothing leaves while both run, well past the timeout.
    await new Promise((resolve) => setTimeout(resolve, 3000))
    expect(statesOf(watcher)).toEqual(['doomed'])
    const killedAt = Date.now()
    doomed.child.kill('SIGKILL')
    await until(() => statesOf(watcher).length === 0, 10_000)
    // The timeout, and the sweep after it (1 s).
    expect(Date.now() - killedAt).toBeLessThan(2000 + 1000 + 1000)
  }, 60_000)

  it('a presence request for a stream the other instance holds is carried out there', async () => {
    const ns = namespace()
    const first = await startInstance(ns)
    const second = await startInstance(ns)
    const watcher = replicaOf(first.url).presence('doc:1', 'watcher')
    // A raw stream on the second instance, and its request sent to the first (no sticky sessions).
    const response = await fetch(`${second.url}/sse?stores=&hello=1`)
    const reader = response.body?.getReader()
    cleanups.push(() => reader?.cancel())
    let text = ''
    while (!text.includes('event: hello')) text += new TextDecoder().decode((await reader?.read())?.value)
    const streamId = (JSON.parse(/event: hello\ndata: (.*)\n/.exec(text)?.[1] ?? '{}') as { streamId: string }).streamId
    const answer = await fetch(`${first.url}/presence`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ streamId, ops: [{ tab: 'routed_tab_key_0123456', room: 'doc:1', state: 'routed' }] }),
    })
    expect(answer.status).toBe(200)
    expect(await answer.json()).toMatchObject({ ok: true, peers: { routed_tab_key_0123456: expect.any(String) } })
    await until(() => statesOf(watcher).includes('routed'), 10_000)
  }, 60_000)
})
