import { afterEach } from 'vitest'

/** What a test opened (servers, replicas, mounted roots), closed after it, the last opened first. */
export const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
