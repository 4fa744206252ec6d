/**
 * `zuno/testing`: a server universe and replicas in one process, through the fetch handler. What
 * an app's own tests rely on: writes reach the server and the other replicas, the server's writes
 * reach every replica, schemas and conflicts behave as over HTTP, and close leaves nothing behind.
 */
import { afterEach, describe, expect, it } from 'vitest'
import * as v from 'valibot'
import { createTestRig, InProcessEventSource, type TestRig, type TestRigOptions } from 'zuno/testing'
import { defineZuno, PROTOCOL_HEADER, PROTOCOL_VERSION } from 'zuno'

const open: Array<Pick<TestRig, 'close'>> = []
afterEach(async () => {
  for (const rig of open.splice(0)) await rig.close()
})

/** A rig that is closed after the test, whatever its store types. */
function tracked<R extends Pick<TestRig, 'close'>>(rig: R): R {
  open.push(rig)
  return rig
}

describe('the test rig', () => {
  it('carries a replica write to the server and to another replica, and a server write to both', async () => {
    const rig = tracked(createTestRig({ stores: { counter: 0 } }))
    const alice = rig.connect()
    const bob = rig.connect()
    const aliceCounter = alice.store<number>('counter', 0)
    const bobCounter = bob.store<number>('counter', 0)
    await aliceCounter.set((n) => n + 1)
    await rig.settled()
    expect(rig.server.store('counter').get()).toBe(1)
    expect(bobCounter.get()).toBe(1)
    await rig.server.store('counter').set(10)
    await rig.settled()
    expect([aliceCounter.get(), bobCounter.get()]).toEqual([10, 10])
    expect(alice.clientId).not.toBe(bob.clientId) // tabs are off: two clients, not one shared
  })

  it('follows a store at runtime, and carries a deletion', async () => {
    const rig = tracked(createTestRig({ stores: { counter: 0 }, allowStore: () => true }))
    await rig.server.store('doc:1', 'a').set('b')
    const replica = rig.connect({ stores: [] })
    const release = replica.follow('doc:1')
    await rig.settled()
    expect(replica.store('doc:1').get()).toBe('b')
    await rig.server.delete('doc:1')
    await rig.settled()
    expect([replica.store('doc:1').get(), replica.store('doc:1').version]).toEqual([undefined, 2])
    release()
  })

  it('refuses what the schema refuses, and rebases a conflicting write', async () => {
    const rig = tracked(createTestRig({ stores: { counter: 0 }, schemas: { counter: v.pipe(v.number(), v.minValue(0)) } }))
    const alice = rig.connect()
    const bob = rig.connect()
    await rig.settled()
    await expect(alice.store<number>('counter', 0).set(-1)).rejects.toMatchObject({ code: 'invalid_state' })
    // Both increment from the same version: the second is refused with 409 and rebased, so none is lost.
    await Promise.all([alice.store<number>('counter', 0).set((n) => n + 1), bob.store<number>('counter', 0).set((n) => n + 1)])
    await rig.settled()
    expect(rig.server.store('counter').get()).toBe(2)
  })

  it('takes an app definition: server and replicas typed from it, its schemas checked on both sides', async () => {
    const app = defineZuno({
      stores: {
        counter: { initial: 0, schema: v.pipe(v.number(), v.minValue(0)) },
        title: { initial: 'untitled' },
      },
    })
    const rig = tracked(createTestRig({ app, stores: { title: 'a test' } }))
    const alice = rig.connect()
    const bob = rig.connect({ initial: { counter: 5 } })
    // Typed with no cast: a number and a string, from the app.
    const counter: number = alice.store('counter').get()
    const title: string = alice.store('title').get()
    // The rig's override of the app's initial state, from the first render on.
    expect([counter, title]).toEqual([0, 'a test'])
    expect(bob.store('counter').get()).toBe(5) // its own initial, until the server's state arrives
    await rig.settled()
    expect([alice.store('title').get(), bob.store('counter').get()]).toEqual(['a test', 0])
    await alice.store('counter').set((n) => n + 2)
    await rig.settled()
    expect([rig.server.store('counter').get(), bob.store('counter').get()]).toEqual([2, 2])
    // The app's schema is checked before a write leaves the replica, and by the server.
    await expect(bob.store('counter').set(-1)).rejects.toMatchObject({ code: 'invalid_state' })
    await expect(rig.server.store('counter').set(-1)).rejects.toMatchObject({ code: 'invalid_state' })
    // Only a type error: at run time the key is still a valid store key.
    // @ts-expect-error: the app defines no store "nope"
    const typeOnly = () => alice.store('nope')
    expect(typeof typeOnly).toBe('function')
    // @ts-expect-error: the rig's override must be of the store's type
    expect(() => createTestRig({ app, stores: { counter: 'one' } })).toThrow(/invalid_state|schema/)
  })

  it('settles with the replicas still open when one of them has been closed', async () => {
    const rig = tracked(createTestRig({ stores: { counter: 0 } }))
    const alice = rig.connect()
    const bob = rig.connect()
    await alice.store<number>('counter', 0).set(1)
    await rig.settled()
    bob.close()
    await alice.store<number>('counter', 0).set(2)
    await rig.settled(2000)
    expect(rig.server.store('counter').get()).toBe(2)
    // A prefix would strand the rig's replicas: not in the type, and ignored if given anyway.
    // @ts-expect-error: the rig's replicas reach the server at the rig's own URL
    const typeOnly = () => createTestRig({ server: { prefix: '/api/zuno' } })
    expect(typeof typeOnly).toBe('function')
    const prefixed = tracked(createTestRig({ stores: { counter: 0 }, server: { prefix: '/api/zuno' } } as TestRigOptions))
    await prefixed.connect().store<number>('counter', 0).set(3)
    expect(prefixed.server.store('counter').get()).toBe(3)
  })

  it('does not wait for a replica refused for its credentials, and names the replicas it waits for', async () => {
    const rig = tracked(
      createTestRig({
        stores: { counter: 0 },
        server: { authenticate: (request) => ((request.query.get('token') ?? request.header('authorization')?.replace(/^Bearer /, '')) === 'good' ? { id: 'ada' } : undefined) },
      }),
    )
    const ada = rig.connect({ token: () => 'good' })
    const eve = rig.connect({ token: () => 'bad' })
    await ada.store<number>('counter', 0).set(1)
    await rig.settled(2000)
    expect(eve.status.get()).toBe('unauthorized')
    // A replica that can catch up but has not yet is named in the error, with where it stands.
    const slow = createTestRig({ stores: { counter: 0 }, server: { authenticate: () => new Promise<undefined>(() => {}) } })
    slow.connect()
    await expect(slow.settled(200)).rejects.toThrow(/within 200 ms: connecting, 0 pending, at no event/)
    await slow.close()
  })

  it('says what the platform lacks instead of hanging (as in Jest\'s jsdom environment)', () => {
    const saved = globalThis.Request
    // @ts-expect-error: removed for this test, as Jest's jsdom environment has no Request
    delete globalThis.Request
    try {
      expect(() => createTestRig()).toThrow(/zuno\/testing needs Request, which this environment lacks/)
    } finally {
      globalThis.Request = saved
    }
  })

  it('answers raw requests through its fetch, and never reaches the network', async () => {
    const rig = tracked(createTestRig({ stores: { counter: 0 } }))
    const answer = await rig.fetch(`${rig.url}/state`, { headers: { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) } })
    expect(answer.status).toBe(200)
    expect(((await answer.json()) as { stores: Record<string, unknown> }).stores).toEqual({ counter: { version: 0, state: 0 } })
    expect(new URL(rig.url).hostname).toBe('zuno.test')
  })

  it('streams through its EventSource: a snapshot first, then each event, and reports a refused stream as closed', async () => {
    const rig = tracked(createTestRig({ stores: { counter: 0 } }))
    const events: string[] = []
    const source = new rig.EventSource(`${rig.url}/sse?v=${PROTOCOL_VERSION}`)
    source.addEventListener('snapshot', (event) => events.push(`snapshot ${event.lastEventId}`))
    source.addEventListener('state', (event) => events.push(`state ${event.data}`))
    await until(() => events.length === 1)
    await rig.server.store('counter').set(5)
    await until(() => events.length === 2)
    expect(events[0]).toBe(`snapshot ${rig.server.cursor.replace(/-\d+$/, '-0')}`)
    expect(events[1]).toContain('"state":5')
    source.close()

    const refused = new rig.EventSource(`${rig.url}/sse?stores=${encodeURIComponent('not a key')}`)
    const failure = await new Promise<Event>((resolve) => {
      refused.onerror = resolve
    })
    expect(refused.readyState).toBe(InProcessEventSource.CLOSED)
    expect((failure as Event & { code?: number }).code).toBe(400)
  })

  it('closes every replica and the server, so a test ends with nothing left open', async () => {
    const local = createTestRig({ stores: { counter: 0 } })
    const replica = local.connect()
    await local.settled()
    await local.close()
    expect(replica.status.get()).toBe('closed')
    expect(local.server.store('counter').get()).toBe(0)
  })
})

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
