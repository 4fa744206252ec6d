import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createFileStorage } from 'zuno/file'
import type { Storage } from 'zuno/server'
import { createSqliteStorage } from 'zuno/sqlite'

/** The storage the demos keep their state in, and the words their banner uses for it. */
export interface EmbeddedStorage {
  storage: Storage
  /** For the banner: what it is and where. */
  description: string
}

/** The values `ZUNO_STORAGE` takes. */
const choices = ['sqlite', 'file'] as const
type Choice = (typeof choices)[number]

/** The files only the JSONL file log writes: a folder holding one is a file log's. */
const fileLogFiles = ['log.jsonl', 'snapshot.json']

/**
 * Picks the embedded storage for `dir`: SQLite (read lazily, so the start does not grow with the
 * documents) unless `ZUNO_STORAGE=file` asks for the JSONL file log. A folder an earlier demo wrote
 * as a file log stays one, so an upgrade loses nothing; and where better-sqlite3 did not build (it
 * is an optional dependency of the demo), the demo says so and keeps its state in a file log.
 * `ZUNO_STORAGE=sqlite` turns both fallbacks into errors.
 */
export async function embeddedStorage(dir: string, requested = process.env.ZUNO_STORAGE): Promise<EmbeddedStorage> {
  if (requested !== undefined && requested !== '' && !choices.includes(requested as Choice)) {
    throw new Error(`ZUNO_STORAGE is "${requested}": use ${choices.join(' or ')}`)
  }
  const choice = requested === '' ? undefined : (requested as Choice | undefined)
  const fileLog = () => ({ storage: createFileStorage({ dir }), description: `data in ${dir} (file log)` })
  if (choice === 'file') return fileLog()

  const earlierLog = fileLogFiles.find((name) => existsSync(join(dir, name)))
  if (earlierLog !== undefined) {
    if (choice === 'sqlite') throw new Error(`${dir} holds a file log (${earlierLog}): give ZUNO_DATA_DIR another folder for SQLite`)
    return fileLog()
  }
  const unavailable = await sqliteUnavailable()
  if (unavailable !== undefined) {
    if (choice === 'sqlite') throw new Error(`ZUNO_STORAGE=sqlite, but ${unavailable}`)
    console.warn(`[demo] ${unavailable}: keeping the state in a file log instead (read whole at start)`)
    return fileLog()
  }
  return { storage: createSqliteStorage({ dir }), description: `data in ${dir} (SQLite)` }
}

/** Why SQLite cannot open here, or `undefined` when it can: Bun has it built in; Node.js needs better-sqlite3's native part. */
async function sqliteUnavailable(): Promise<string | undefined> {
  if ((process.versions as { bun?: string }).bun !== undefined) return undefined
  try {
    // The package may resolve while its native part failed to build: only opening a database tells.
    const { default: Database } = await import('better-sqlite3')
    new Database(':memory:').close()
    return undefined
  } catch (error) {
    return `better-sqlite3 could not be loaded (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`
  }
}
