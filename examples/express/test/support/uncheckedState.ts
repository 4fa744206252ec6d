import { createUniverse } from 'zuno/server'
import { embeddedStorage } from '../../src/storage'
import { demoStores } from '../../src/stores'

/**
 * Leaves `todos` holding a state the demo's schema refuses, in the data folder `dir`, in the
 * storage the demo picks there: what a version of the demo without schemas could have written.
 */
export async function writeUncheckedTodos(dir: string, state: unknown): Promise<void> {
  const { storage } = await embeddedStorage(dir)
  const unchecked = createUniverse({ stores: demoStores, storage })
  await unchecked.store('todos').set(state)
  await unchecked.close()
  await storage.close()
}
