import { dirname, join } from 'node:path'
import type { StoreState } from '../protocol'
import type { ClientRecord } from '../server/clientLedger'
import { errorCode, type FileSystem, fsyncFolder, writeAll } from './fileSystem'

/** The format of the folder's files. Format 1 (no `format` field) is migrated at start; a newer one is refused. */
export const FORMAT = 2

/** `snapshot.json`: the whole truth as of `seq`. */
export interface Snapshot {
  /** Absent in format 1. */
  format: number
  epoch: string
  seq: number
  stores: Record<string, StoreState>
  /** Every client's record, so exactly-once holds across a restart. */
  clients: Array<[string, ClientRecord]>
}

/**
 * Reads `dir`'s snapshot and its size in bytes, or `undefined` if there is none yet. A format 1
 * snapshot comes back as format 2 with `migrating` set: its idempotency answers are dropped (they
 * were kept by client ids that protocol v2 refuses, so no v2 client can retry into them).
 */
export function readSnapshot(fs: FileSystem, dir: string): { snapshot: Snapshot; bytes: number; migrating: boolean } | undefined {
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
  if (snapshot.format === undefined) {
    const { epoch, seq, stores } = snapshot
    return { snapshot: { format: FORMAT, epoch, seq, stores, clients: [] }, bytes: Buffer.byteLength(text), migrating: true }
  }
  if (snapshot.format !== FORMAT) {
    throw new Error(`${dir} holds Zuno data of format ${snapshot.format}, newer than this version reads (${FORMAT}): upgrade Zuno`)
  }
  return { snapshot, bytes: Buffer.byteLength(text), migrating: false }
}

/**
 * Writes `dir`'s snapshot whole or not at all (see {@link writeFileWhole}), so the rename survives
 * a power cut before the caller empties the log. Returns its size in bytes; throws if any step
 * failed (the old snapshot then stands).
 */
export function writeSnapshot(fs: FileSystem, dir: string, snapshot: Snapshot): number {
  const bytes = Buffer.from(JSON.stringify(snapshot))
  writeFileWhole(fs, join(dir, 'snapshot.json'), bytes)
  return bytes.length
}

/**
 * Writes a file whole or not at all: to a temporary file, every byte checked and flushed, then
 * renamed over the old one and the folder flushed. Throws if any step failed.
 */
export function writeFileWhole(fs: FileSystem, path: string, bytes: Uint8Array): void {
  const temporary = `${path}.tmp`
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
  fsyncFolder(fs, dirname(path))
}
