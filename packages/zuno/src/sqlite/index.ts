/**
 * `zuno/sqlite`: the embedded durable storage read lazily, one SQLite database per folder (Node.js
 * with better-sqlite3, Bun with `bun:sqlite`). Nothing native is loaded until the storage opens.
 *
 * @module zuno/sqlite
 */
export { createSqliteStorage } from './sqliteStorage'
export type { FsyncPolicy, SqliteStorage, SqliteStorageOptions } from './sqliteStorage'
