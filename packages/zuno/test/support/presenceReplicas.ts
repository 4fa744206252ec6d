import { EventSource } from 'eventsource'
import { connect, type PresenceRoom, type ReplicaOptions, type ReplicaUniverse } from '../../src/index'
import { SimBrowser } from '../simulation/simBrowser'
import type { VirtualClock } from '../simulation/virtualClock'

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

/** The values of the others in `room`, as the room shows them now. */
export const statesOf = <P>(room: PresenceRoom<P>) => room.others().map((peer) => peer.state)
