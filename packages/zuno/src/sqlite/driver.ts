/** A value SQLite takes as a parameter or gives back in a column, as far as this storage uses them. */
export type SqlValue = string | number | null

/** A row, by column name. */
export type SqlRow = Record<string, SqlValue>

/** A prepared statement: the part of better-sqlite3's and `bun:sqlite`'s that the storage uses. */
export interface SqliteStatement {
  run(...params: SqlValue[]): unknown
  /** The first row, or `undefined` (Bun says `null`; the driver turns it into `undefined`). */
  get(...params: SqlValue[]): SqlRow | undefined
  all(...params: SqlValue[]): SqlRow[]
}

/** An open database: the same small surface on Node.js (better-sqlite3) and on Bun (`bun:sqlite`). */
export interface SqliteDatabase {
  /** Runs one statement without parameters. */
  exec(sql: string): void
  prepare(sql: string): SqliteStatement
  /** Whether a transaction is open (SQLite rolls one back by itself on some errors, a full disk among them). */
  readonly inTransaction: boolean
  close(): void
}

/** What the driver modules export, as far as opening a file goes. */
type DatabaseClass = new (path: string) => {
  exec?(sql: string): unknown
  run?(sql: string): unknown
  prepare(sql: string): { run(...params: SqlValue[]): unknown; get(...params: SqlValue[]): unknown; all(...params: SqlValue[]): unknown[] }
  readonly inTransaction: boolean
  close(): void
}

/**
 * Opens `path` with the runtime's SQLite: `bun:sqlite` on Bun, better-sqlite3 (an optional peer
 * dependency) on Node.js. Imported here, when first opened, so that importing `zuno/sqlite` loads
 * nothing native.
 */
export async function openDatabase(path: string): Promise<SqliteDatabase> {
  const bun = (process.versions as { bun?: string }).bun !== undefined
  // Through a variable: bundlers and TypeScript leave the specifier to the runtime.
  const specifier = bun ? 'bun:sqlite' : 'better-sqlite3'
  let loaded: { default?: unknown; Database?: unknown }
  try {
    loaded = (await import(/* @vite-ignore */ specifier)) as typeof loaded
  } catch (error) {
    throw new Error(`zuno/sqlite needs ${bun ? 'bun:sqlite' : 'better-sqlite3 12 (npm install better-sqlite3)'}, which could not be loaded`, { cause: error })
  }
  const Database = (bun ? (loaded.Database ?? loaded.default) : (loaded.default ?? loaded)) as DatabaseClass
  const db = new Database(path)
  // better-sqlite3 has this very surface; Bun's answers `null` for no row and may lack `exec`.
  if (!bun) return db as unknown as SqliteDatabase
  return {
    exec: (sql) => {
      if (db.exec !== undefined) db.exec(sql)
      else db.run?.(sql)
    },
    prepare(sql) {
      const statement = db.prepare(sql)
      return {
        run: (...params) => statement.run(...params),
        get: (...params) => (statement.get(...params) ?? undefined) as SqlRow | undefined,
        all: (...params) => statement.all(...params) as SqlRow[],
      }
    },
    get inTransaction() {
      return db.inTransaction
    },
    close: () => db.close(),
  }
}
