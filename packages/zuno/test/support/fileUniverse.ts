import { createFileStorage, type FileStorage, type FileStorageOptions } from '../../src/file/index'
import { newClientId } from '../../src/id'
import { type AuthoritativeUniverse, createUniverse } from '../../src/server/index'
import { freshDir as tempDir } from './tempDirs'

export { removeDirs } from './tempDirs'

/** A temporary data folder named for the file storage, removed by `removeDirs`. */
export const freshDir = (): string => tempDir('zuno-file-')

/** A universe on a file storage in `dir`, ready; close the storage before opening the folder again. */
export async function openFile(dir: string, options: Partial<FileStorageOptions> = {}) {
  const storage: FileStorage = createFileStorage({ dir, ...options })
  const universe = createUniverse({ stores: { counter: 0 }, storage, allowStore: () => true })
  await universe.ready
  const close = async () => {
    await universe.close()
    await storage.close()
  }
  return { universe, storage, close }
}

/** One client proposing on a universe, as a sync server would pass its requests on. */
export function proposer(universe: AuthoritativeUniverse, clientId = newClientId()) {
  return (baseVersion: number, state: unknown, opId: number, storeKey = 'counter') =>
    universe.propose({ storeKey, baseVersion, state, clientId, opId, epoch: universe.epoch }, { principal: '' })
}
