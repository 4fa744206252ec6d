/**
 * Fills a storage with `count` documents (`doc:0` … `doc:N-1`, about 100 bytes of JSON each),
 * committed through the storage itself as writes of many clients, as a server would have written
 * them: the many-stores suite starts its servers on what this leaves.
 */
import { monotonicMs, onCommand, report } from '../harness/channel'
import { openStorage, type StorageKind } from '../servers/manyStoresStorage'

/** Clients writing at once; each sends its ops one after another, as a client does. */
const CLIENTS = 64

onCommand(async (command) => {
  if (command.type !== 'fill') return
  const storage = openStorage(command.kind as StorageKind, { dir: command.dir as string | undefined, namespace: command.namespace as string | undefined })
  const { epoch } = await storage.load()
  const count = command.count as number
  const started = monotonicMs()
  let nextStore = 0
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, client) => {
      const clientId = `fill${String(client).padStart(18, '0')}`
      for (let opId = 1; nextStore < count; opId++) {
        const n = nextStore++
        const storeKey = `doc:${n}`
        const state = { title: `Document ${n}`, body: 'x'.repeat(64), n }
        // Measured, as a server's proposals are.
        const write = { storeKey, baseVersion: 0, state, stateBytes: JSON.stringify(state).length }
        const outcome = await storage.commit({ principal: '', clientId, opId, digest: `fill-${n}`, epoch, write })
        if (outcome.type !== 'accepted') throw new Error(`filling ${storeKey}: ${outcome.type}`)
      }
    }),
  )
  await storage.close()
  report({ type: 'filled', ms: monotonicMs() - started })
})
report({ type: 'ready' })
