import { hostname } from 'node:os'
import { join } from 'node:path'
import { randomId } from '../id'
import { errorCode, type FileSystem, writeAll } from './fileSystem'

/** What the `lock` file says about the process that holds the folder. */
interface Holder {
  pid: number
  /** How long ago the holder last touched the lock file (read from its mtime, not stored). */
  silentMs?: number
  host: string
  /** Tells this holding apart from an earlier one by a process with the same pid (pid 1 in a container). */
  token: string
  startedAt: number
}

/** A lock file that was there but could not be read whole. */
interface Unreadable {
  unreadable: true
  ageMs: number
}

/** The tokens held in this process, on `globalThis` so two bundled copies of Zuno still agree. */
const held: Set<string> = ((globalThis as Record<symbol, Set<string>>)[Symbol.for('zuno.file.heldLocks')] ??= new Set())

/** An unreadable lock this old is from a crash between creating it and writing it. */
const UNREADABLE_STALE_MS = 10_000
/** How often a holder touches its lock file: a live holder's lock is never older than this. */
const HEARTBEAT_MS = 1_000
/**
 * A lock whose pid looks gone is taken over only once it has not been touched for this long. The
 * pid alone cannot tell: a holder in another container (another PID namespace, the same volume)
 * looks gone from here, but its heartbeat goes on.
 */
const SILENT_MS = 4 * HEARTBEAT_MS

/** The folder's lock, held until released. */
export interface FolderLock {
  release(): void
}

/**
 * Takes `dir`'s lock: a `lock` file created exclusively (`wx`), holding this process's pid, host and
 * a fresh token, touched every second while held. A lock whose process is gone (killed with
 * SIGKILL, say) and that has not been touched for 4 s is stale and taken over (a start may wait that
 * long); any other lock, including one held by another storage in this process or by a process in
 * another container on the same volume, refuses the start. `what` names the storage in that refusal.
 */
export function lockFolder(fs: FileSystem, dir: string, what = 'file storage'): FolderLock {
  const path = join(dir, 'lock')
  const holder: Holder = { pid: process.pid, host: hostname(), token: randomId(), startedAt: Date.now() }
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number
    try {
      fd = fs.openSync(path, 'wx')
    } catch (error) {
      if (errorCode(error) !== 'EEXIST') throw error
      let existing = readHolder(fs, path)
      // A holder that looks gone but touched the lock lately: wait, bounded, to see whether it goes on.
      const deadline = Date.now() + SILENT_MS + HEARTBEAT_MS
      while (existing !== undefined && looksGone(existing) && !isStale(existing) && Date.now() < deadline) {
        sleepSync(HEARTBEAT_MS / 2)
        existing = readHolder(fs, path)
      }
      if (existing !== undefined && !isStale(existing)) {
        throw new Error(
          `${dir} is in use by another Zuno ${what} (${describe(existing)}); a data folder serves one process at a time. ` +
            `If that process is gone, delete ${path}.`,
        )
      }
      if (existing !== undefined) takeOver(fs, path, existing)
      continue
    }
    try {
      writeAll(fs, fd, Buffer.from(JSON.stringify(holder)))
      fs.fsyncSync(fd)
    } catch (error) {
      fs.closeSync(fd)
      fs.unlinkSync(path)
      throw new Error(`${dir}: could not write the lock file ${path}`, { cause: error })
    }
    fs.closeSync(fd)
    held.add(holder.token)
    const heartbeat = setInterval(() => {
      try {
        const now = new Date()
        fs.utimesSync(path, now, now)
      } catch {
        // The next beat tries again; a holder whose lock went missing is the operator's to sort out.
      }
    }, HEARTBEAT_MS)
    ;(heartbeat as { unref?: () => void }).unref?.()
    return {
      release() {
        clearInterval(heartbeat)
        if (!held.delete(holder.token)) return
        const current = readHolder(fs, path)
        if (current !== undefined && 'token' in current && current.token === holder.token) {
          try {
            fs.unlinkSync(path)
          } catch {
            // Gone already; nothing to release.
          }
        }
      },
    }
  }
  throw new Error(`${dir}: could not take the lock ${path}; other processes keep taking it`)
}

function readHolder(fs: FileSystem, path: string): Holder | Unreadable | undefined {
  let text: string
  try {
    text = fs.readFileSync(path, 'utf8')
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined // released meanwhile: try again
    throw error
  }
  let ageMs = 0
  try {
    ageMs = Date.now() - fs.statSync(path).mtimeMs
  } catch {
    return undefined
  }
  try {
    const holder = JSON.parse(text) as Holder
    if (typeof holder.pid === 'number' && typeof holder.token === 'string') return { ...holder, silentMs: ageMs }
  } catch {
    // Fall through: unreadable.
  }
  return { unreadable: true, ageMs }
}

/** Whether the holder's process looks gone from here (which another PID namespace can fake). */
function looksGone(existing: Holder | Unreadable): boolean {
  if ('unreadable' in existing || existing.host !== hostname()) return false
  if (existing.pid === process.pid) return !held.has(existing.token)
  try {
    process.kill(existing.pid, 0)
    return false
  } catch (error) {
    return errorCode(error) === 'ESRCH' // EPERM: alive, someone else's
  }
}

/** Sleeps without giving up the thread: taking the lock is part of a synchronous start. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

function isStale(existing: Holder | Unreadable): boolean {
  if ('unreadable' in existing) return existing.ageMs > UNREADABLE_STALE_MS
  // Another machine's process cannot be checked from here; a silent lock of a gone process can.
  return looksGone(existing) && (existing.silentMs ?? 0) > SILENT_MS
}

/** Removes a stale lock, unless another process replaced it meanwhile. */
function takeOver(fs: FileSystem, path: string, stale: Holder | Unreadable): void {
  const aside = `${path}.stale-${randomId()}`
  try {
    fs.renameSync(path, aside)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return // someone else took it over
    throw error
  }
  const moved = readHolder(fs, aside)
  const same = moved !== undefined && ('token' in stale ? 'token' in moved && moved.token === stale.token : 'unreadable' in moved)
  if (same) {
    fs.unlinkSync(aside)
  } else {
    fs.renameSync(aside, path) // a live lock taken in between: put it back; the next attempt sees it
  }
}

function describe(existing: Holder | Unreadable): string {
  if ('unreadable' in existing) return 'a lock file being written'
  const self = existing.pid === process.pid && existing.host === hostname() ? ', this process' : ''
  return `process ${existing.pid} on ${existing.host}${self}, since ${new Date(existing.startedAt).toISOString()}`
}
