import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
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
export async function embeddedStorage(folder: string, requested = process.env.ZUNO_STORAGE): Promise<EmbeddedStorage> {
  const choice = storageChoice(requested)
  if (folder === '') throw new Error('ZUNO_DATA_DIR is empty: name a folder, or leave it unset for the default')
  // Relative to where the demo runs (its example's folder); the banner says where that is.
  const dir = resolve(folder)
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
    // A folder SQLite wrote cannot go on as a file log: its state would seem gone.
    if (existsSync(join(dir, 'zuno.db'))) throw new Error(`${dir} holds SQLite data (zuno.db), but ${unavailable}: rebuild it (npm rebuild better-sqlite3) or give ZUNO_DATA_DIR another folder`)
    console.warn(`[demo] ${unavailable}: keeping the state in a file log instead (read whole at start)`)
    return fileLog()
  }
  return { storage: createSqliteStorage({ dir }), description: `data in ${dir} (SQLite)` }
}

/** The storage `ZUNO_STORAGE` asks for (`undefined`: the default); throws on any other value, so a typo is not taken for the default. */
export function storageChoice(requested: string | undefined): Choice | undefined {
  if (requested === undefined || requested === '') return undefined
  if (!choices.includes(requested as Choice)) throw new Error(`ZUNO_STORAGE is "${requested}": use ${choices.join(' or ')}`)
  return requested as Choice
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
