import { join } from 'node:path'
import type { StoreState } from '../protocol'
import type { ClientRecord } from '../server/clientLedger'
import { errorCode, type FileSystem, fsyncFolder, writeAll } from './fileSystem'

/** The format of the folder's files; an older one is refused (nothing was published with it), a newer one too. */
export const FORMAT = 2

/** `snapshot.json`: the whole truth as of `seq`. */
export interface Snapshot {
  format: number
  epoch: string
  seq: number
  stores: Record<string, StoreState>
  /** Every client's record, so exactly-once holds across a restart. */
  clients: Array<[string, ClientRecord]>
}

/** Reads `dir`'s snapshot and its size in bytes, or `undefined` if there is none yet. */
export function readSnapshot(fs: FileSystem, dir: string): { snapshot: Snapshot; bytes: number } | undefined {
  const path = join(dir, 'snapshot.json')
  let text: string
  try {
    text = fs.readFileSync(path, 'utf8')
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined
    throw error
  }
  let snapshot: Snapshot
  try {
    snapshot = JSON.parse(text) as Snapshot
  } catch (error) {
    throw new Error(`${path} is not JSON: the folder ${dir} is damaged`, { cause: error })
  }
  if (snapshot.format !== FORMAT) {
    throw new Error(`${dir} holds Zuno data of format ${snapshot.format ?? 1}; this version reads format ${FORMAT} only`)
  }
  return { snapshot, bytes: Buffer.byteLength(text) }
}

/**
 * Writes `dir`'s snapshot whole or not at all: to a temporary file, every byte checked and flushed,
 * then renamed over the old one and the folder flushed, so the rename survives a power cut before
 * the caller empties the log. Returns its size in bytes; throws if any step failed (the old
 * snapshot then stands).
 */
export function writeSnapshot(fs: FileSystem, dir: string, snapshot: Snapshot): number {
  const path = join(dir, 'snapshot.json')
  const temporary = `${path}.tmp`
  const bytes = Buffer.from(JSON.stringify(snapshot))
  try {
    const fd = fs.openSync(temporary, 'w')
    try {
      writeAll(fs, fd, bytes)
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(temporary, path)
  } catch (error) {
    try {
      fs.unlinkSync(temporary)
    } catch {
      // Not there, or the disk refuses even this: the next write replaces it.
    }
    throw error
  }
  fsyncFolder(fs, dir)
  return bytes.length
}
