/**
 * Presence hooks: this tab's value in a room and the others', each one `useSyncExternalStore`
 * over the replica's room. A component using one is in the room while mounted (React's
 * subscription joins, its cleanup leaves), so a StrictMode remount sends nothing.
 */
import { useCallback, useMemo, useRef, useSyncExternalStore } from 'react'
import type { BroadcastSender, PresencePeer, PresenceRoom, Universe } from 'zuno'
import { useUniverse } from './universe'

/** A universe with presence: a replica (a server render's snapshot universe has none: the hooks show nobody). */
interface PresenceUniverse extends Universe {
  presence<P>(room: string, ...initial: [] | [P]): PresenceRoom<P | null>
}

const NOBODY: readonly PresencePeer[] = Object.freeze([])

/** A room as the hooks of one component see it: joined while React is subscribed. */
class RoomSource<P> {
  /** The handle of the current subscription, if any. */
  handle: PresenceRoom<P | null> | undefined
  /** What was asked before React subscribed (a child's mount effect runs before its parent's): done once it has. */
  readonly waiting: Array<(handle: PresenceRoom<P | null>) => void> = []

  constructor(
    readonly universe: Partial<PresenceUniverse>,
    readonly room: string,
    readonly initial: [] | [P],
  ) {}

  /** Calls `call` with the room's handle, now or once React has subscribed. */
  use(call: (handle: PresenceRoom<P | null>) => void): void {
    if (this.handle !== undefined) call(this.handle)
    else this.waiting.push(call)
  }

  readonly subscribe = (onChange: () => void): (() => void) => {
    const handle = this.universe.presence?.<P>(this.room, ...this.initial)
    if (handle === undefined) return () => {}
    this.handle = handle
    for (const call of this.waiting.splice(0)) call(handle)
    const stop = handle.subscribe(onChange)
    // The room may show more than the defaults read before joining (another component joined it first).
    onChange()
    return () => {
      stop()
      handle.leave()
      if (this.handle === handle) this.handle = undefined
    }
  }
}

function useRoomSource<P>(room: string, initial: [] | [P]): RoomSource<P> {
  const universe = useUniverse() as Partial<PresenceUniverse>
  // The initial value counts when the component first joins the room, as `useState`'s does.
  const first = useRef(initial)
  return useMemo(() => new RoomSource<P>(universe, room, first.current), [universe, room])
}

/**
 * This tab's presence value in `room` and the function that sets it (latest wins; the others see
 * it at most 20 times a second). The tab is in the room while the component is mounted.
 */
export function useMyPresence<P>(room: string, initial: P): [P, (next: P | ((current: P) => P)) => void] {
  const source = useRoomSource<P>(room, [initial])
  // `initial` only until the room's handle exists: a value of `null` is this tab's value, not a gap.
  const get = () => (source.handle === undefined ? initial : source.handle.me()) as P
  const me = useSyncExternalStore(source.subscribe, get, () => initial)
  const set = useCallback((next: P | ((current: P) => P)) => source.use((handle) => handle.set(next as P)), [source])
  return [me, set]
}

/**
 * The others in `room` (this browser's other tabs among them), or what `select` picks of them,
 * re-rendering only when that changes by `equal` (default `Object.is`: the list is the same array
 * until someone joins, changes or leaves). The tab is in the room while the component is mounted,
 * with its value `null` until `useMyPresence` or a `set` gives one.
 */
export function useOthers<P, S = readonly PresencePeer<P>[]>(
  room: string,
  select: (others: readonly PresencePeer<P>[]) => S = identity as (others: readonly PresencePeer<P>[]) => S,
  equal: (a: S, b: S) => boolean = Object.is,
): S {
  const source = useRoomSource<P>(room, [])
  const memo = useRef<{ others: readonly PresencePeer<P>[]; select: typeof select; selected: S } | undefined>(undefined)
  const get = (): S => {
    const others = (source.handle?.others() ?? NOBODY) as readonly PresencePeer<P>[]
    const last = memo.current
    if (last !== undefined && last.others === others && last.select === select) return last.selected
    const selected = select(others)
    const kept = last !== undefined && equal(last.selected, selected) ? last.selected : selected
    memo.current = { others, select, selected: kept }
    return kept
  }
  return useSyncExternalStore(source.subscribe, get, () => select(NOBODY as readonly PresencePeer<P>[]))
}

/**
 * The function that broadcasts an event to everyone else in `room`; with `listener`, the events
 * the others broadcast reach it while the component is mounted. The tab is in the room meanwhile.
 */
export function useBroadcast(room: string, listener?: (data: unknown, from: BroadcastSender) => void): (data: unknown) => void {
  const source = useRoomSource<never>(room, [])
  const latest = useRef(listener)
  latest.current = listener
  const subscribe = useCallback(
    (onChange: () => void) => {
      const leave = source.subscribe(onChange)
      const stop = source.handle?.onBroadcast((data, from) => latest.current?.(data, from))
      return () => {
        stop?.()
        leave()
      }
    },
    [source],
  )
  useSyncExternalStore(subscribe, noChange, noChange)
  return useCallback((data: unknown) => source.use((handle) => handle.broadcast(data)), [source])
}

const identity = <T>(value: T) => value
const noChange = () => 0
