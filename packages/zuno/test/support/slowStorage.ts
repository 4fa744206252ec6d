import { createMemoryStorage, type Storage } from '../../src/server/index'

/** A memory storage whose commits wait until `release()`, to hold proposals in flight. */
export function slowStorage(): Storage & { release(): void; waiting(): number } {
  const inner = createMemoryStorage()
  let open = () => {}
  const gate = new Promise<void>((resolve) => {
    open = resolve
  })
  let waiting = 0
  return {
    ...inner,
    async commit(proposal) {
      waiting += 1
      await gate
      return inner.commit(proposal)
    },
    release: () => open(),
    waiting: () => waiting,
  }
}
