import type { FileSystem } from './fileSystem'

/** How much of the log is read at a time: recovery holds one chunk and one line, not the whole log. */
const CHUNK_BYTES = 1024 * 1024

/**
 * Reads the log in `fd` line by line from the start, calling `onLine` with each complete line
 * (without its newline); `onLine` returns false for a line that does not parse. Returns the length
 * of the good prefix: what follows it is a torn last write (a line without its newline, or one that
 * does not parse with nothing after it), never acknowledged, for the caller to truncate. A line that
 * does not parse with more after it is damage, not a torn write: that throws rather than drop what
 * follows.
 */
export function readLog(fs: FileSystem, fd: number, path: string, onLine: (line: Buffer) => boolean): number {
  const size = fs.fstatSync(fd).size
  const chunk = Buffer.allocUnsafe(CHUNK_BYTES)
  let pending: Buffer[] = [] // the start of a line that runs past the chunk
  let position = 0
  let lineStart = 0
  while (position < size) {
    const count = fs.readSync(fd, chunk, 0, Math.min(CHUNK_BYTES, size - position), position)
    if (count <= 0) break
    const view = chunk.subarray(0, count)
    let from = 0
    for (let newline = view.indexOf(10, from); newline !== -1; newline = view.indexOf(10, from)) {
      const piece = view.subarray(from, newline)
      const line = pending.length === 0 ? piece : Buffer.concat([...pending, piece])
      pending = []
      const end = position + newline + 1
      if (!onLine(line)) {
        if (end < size) throw new Error(`${path} is damaged at byte ${lineStart}: a line that is not JSON, with more after it`)
        return lineStart
      }
      lineStart = end
      from = newline + 1
    }
    if (from < count) pending.push(Buffer.from(view.subarray(from))) // copied: the chunk is reused
    position += count
  }
  return lineStart
}
