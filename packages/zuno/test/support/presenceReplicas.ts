import { EventSource } from 'eventsource'
import { afterEach, expect } from 'vitest'
import { connect, type PresenceRoom, type ReplicaOptions, type ReplicaUniverse } from '../../src/index'
import { SimBrowser } from '../simulation/simBrowser'
import type { VirtualClock } from '../simulation/virtualClock'
import { openRawStream, type RawStream } from './sseReader'

/** The process's own clock in the shape a SimBrowser takes, for tabs that talk to real servers. */
export const realClock = { get now() { return Date.now() }, setTimeout: (run: () => void, ms: number) => setTimeout(run, ms) } as unknown as VirtualClock

/**
 * `replicaOf(url, options)` for presence tests: a replica with no stores (presence needs none) on
 * the real `eventsource` client; `cleanups` gets its closing.
 */
export function replicaOpener(cleanups: Array<() => unknown>) {
  return (url: string, options: Partial<ReplicaOptions> = {}): ReplicaUniverse => {
    const replica = connect({ url, EventSource, stores: [], ...options })
    cleanups.push(() => replica.close())
    return replica
  }
}

/** Opens tabs of one simulated browser on `url`: they share its channels and locks, so one leads. */
export function browserTabs(replicaOf: ReturnType<typeof replicaOpener>, url: string) {
  const browser = new SimBrowser(realClock, () => 1)
  return (name: string) => replicaOf(url, { tabs: true, BroadcastChannel: browser.channelFor(), locks: browser.locksFor(name) })
}

/** Opens `openStream(url, user)` for presence tests: a raw stream that asked for its id (`hello`), read past its snapshot; `cleanups` gets its closing. */
export function streamOpener(cleanups: Array<() => unknown>) {
  return async (url: string, user = ''): Promise<{ stream: RawStream; streamId: string }> => {
    const stream = await openRawStream(`${url}/sse?stores=&hello=1`, { 'x-user': user })
    cleanups.push(() => stream.close())
    const hello = await stream.nextEvent()
    expect(hello.event).toBe('hello')
    expect((await stream.nextEvent()).event).toBe('snapshot')
    return { stream, streamId: (JSON.parse(hello.data as string) as { streamId: string }).streamId }
  }
}

/**
 * What a presence test file opens, closed after each test: `replicaOf(url, options)` and
 * `openStream(url, user)`; `cleanups` takes whatever else a test opens.
 */
export function presenceTestKit() {
  const cleanups: Array<() => unknown> = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  return { cleanups, replicaOf: replicaOpener(cleanups), openStream: streamOpener(cleanups) }
}

/** A tab's key, as a tab makes one (22 base64url characters), from a readable name. */
export const tabKey = (name: string) => name.padEnd(22, '_').slice(0, 22)

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The values of the others in `room`, as the room shows them now. */
export const statesOf = <P>(room: PresenceRoom<P>) => room.others().map((peer) => peer.state)
