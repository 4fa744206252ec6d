import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createFileStorage, type FileStorage, type FileStorageOptions } from '../../src/file/index'
import { newClientId } from '../../src/id'
import { type AuthoritativeUniverse, createUniverse } from '../../src/server/index'

/** Temporary data folders, removed by {@link removeDirs}. */
const dirs: string[] = []
export function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'zuno-file-'))
  dirs.push(dir)
  return dir
}
export function removeDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}

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
