import { type CommittedEvent, createMemoryStorage, type Storage } from '../../src/server/index'

/**
 * A storage whose deliveries to the universe can be held, so the universe lags its storage like one
 * instance of two on Redis; `inner` commits as the other instance would (the memory storage unless given one).
 */
export function laggingStorage(inner: Storage = createMemoryStorage()): Storage & { inner: Storage; hold(): void; release(): void } {
  let held: CommittedEvent[] | undefined
  const listeners: Array<(event: CommittedEvent) => void> = []
  inner.onCommit((event) => {
    if (held !== undefined) held.push(event)
    else for (const listener of listeners) listener(event)
  })
  return {
    ...inner,
    inner,
    onCommit(listener) {
      listeners.push(listener)
      return () => listeners.splice(listeners.indexOf(listener), 1)
    },
    hold: () => {
      held = []
    },
    release: () => {
      const events = held ?? []
      held = undefined
      for (const event of events) for (const listener of listeners) listener(event)
    },
  }
}
