import * as nodeFs from 'node:fs'

/**
 * The file-system calls the file storage makes, all synchronous: node:fs by default (Bun provides
 * the same module). Injected so a test can make one write come back short or one fsync throw.
 */
export type FileSystem = Pick<
  typeof nodeFs,
  | 'openSync'
  | 'readSync'
  | 'writeSync'
  | 'fsyncSync'
  | 'ftruncateSync'
  | 'fstatSync'
  | 'closeSync'
  | 'readFileSync'
  | 'renameSync'
  | 'unlinkSync'
  | 'mkdirSync'
  | 'statSync'
  | 'utimesSync'
>

export const nodeFileSystem: FileSystem = nodeFs

/**
 * Writes all of `bytes` at the file's end, looping on short writes. A write that makes no progress
 * or throws (EFBIG past `ulimit -f`, ENOSPC, EIO) fails the whole write: the caller must treat
 * any of `bytes` as possibly on disk and not acknowledged.
 */
export function writeAll(fs: FileSystem, fd: number, bytes: Uint8Array): void {
  let written = 0
  while (written < bytes.length) {
    const count = fs.writeSync(fd, bytes, written, bytes.length - written)
    if (!(count > 0)) throw new Error(`short write: ${written + Math.max(0, count || 0)} of ${bytes.length} bytes`)
    written += count
  }
}

/** Flushes a folder's entries (a rename in it) to disk. Windows cannot open a folder; it has no need. */
export function fsyncFolder(fs: FileSystem, dir: string): void {
  if (process.platform === 'win32') return
  const fd = fs.openSync(dir, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** The `code` of a Node.js system error (`ENOENT`, `EEXIST`, …), if it is one. */
export function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined
}
