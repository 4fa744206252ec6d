import type { SqliteDatabase } from './driver'

/** The format of the database's tables; a newer one is refused. */
export const FORMAT = 1

/**
 * The tables. `meta` is one row: the epoch, the last seq and how many stores exist, moved in the
 * same transaction as every commit, so a start reads them instead of counting. `events` keeps the
 * last events only (for clients resuming across a restart); `stores` is the truth.
 */
const TABLES = [
  'CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), format INTEGER NOT NULL, epoch TEXT NOT NULL, seq INTEGER NOT NULL, store_count INTEGER NOT NULL)',
  // `state` is JSON, NULL when deleted; `deleted_at` outlives a re-creation, as StoreTable keeps it.
  'CREATE TABLE IF NOT EXISTS stores (key TEXT PRIMARY KEY, version INTEGER NOT NULL, deleted INTEGER NOT NULL, deleted_at INTEGER, state TEXT)',
  'CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, bytes INTEGER NOT NULL, body TEXT NOT NULL)',
  'CREATE TABLE IF NOT EXISTS clients (key TEXT PRIMARY KEY, mark INTEGER NOT NULL, seen_at INTEGER NOT NULL)',
  'CREATE INDEX IF NOT EXISTS clients_by_seen ON clients (seen_at)',
  'CREATE TABLE IF NOT EXISTS answers (client TEXT NOT NULL, op_id INTEGER NOT NULL, digest TEXT NOT NULL, answer TEXT NOT NULL, PRIMARY KEY (client, op_id)) WITHOUT ROWID',
]

/** How a commit reaches the disk (SQLite's `synchronous`, in WAL mode). */
const SYNCHRONOUS = { always: 'FULL', interval: 'NORMAL', never: 'OFF' } as const

/** Sets the connection up (WAL, the sync policy) and creates the tables if missing. */
export function prepareDatabase(db: SqliteDatabase, fsync: keyof typeof SYNCHRONOUS): void {
  db.exec('PRAGMA journal_mode = WAL')
  db.exec(`PRAGMA synchronous = ${SYNCHRONOUS[fsync]}`)
  // One process holds the folder (its lock): nothing waits for another writer.
  db.exec('PRAGMA busy_timeout = 0')
  db.exec('BEGIN IMMEDIATE')
  try {
    for (const sql of TABLES) db.exec(sql)
    db.exec('COMMIT')
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK')
    throw error
  }
}

/** Every statement the storage runs, prepared once. */
export function prepareStatements(db: SqliteDatabase) {
  const p = (sql: string) => db.prepare(sql)
  return {
    begin: p('BEGIN IMMEDIATE'),
    beginRead: p('BEGIN DEFERRED'),
    commit: p('COMMIT'),
    rollback: p('ROLLBACK'),
    meta: p('SELECT format, epoch, seq, store_count FROM meta WHERE id = 1'),
    insertMeta: p('INSERT INTO meta (id, format, epoch, seq, store_count) VALUES (1, ?, ?, ?, ?)'),
    setMeta: p('UPDATE meta SET seq = ?, store_count = ? WHERE id = 1'),
    head: p('SELECT version, deleted, deleted_at FROM stores WHERE key = ?'),
    state: p('SELECT state FROM stores WHERE key = ?'),
    store: p('SELECT key, version, deleted, deleted_at, state FROM stores WHERE key = ?'),
    allStores: p('SELECT key, version, deleted, deleted_at, state FROM stores'),
    writeStore: p(
      'INSERT INTO stores (key, version, deleted, deleted_at, state) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET ' +
        'version = excluded.version, deleted = excluded.deleted, deleted_at = coalesce(excluded.deleted_at, stores.deleted_at), state = excluded.state',
    ),
    insertEvent: p('INSERT INTO events (seq, bytes, body) VALUES (?, ?, ?)'),
    trimEvents: p('DELETE FROM events WHERE seq <= ?'),
    recentEvents: p('SELECT seq, bytes FROM events ORDER BY seq DESC LIMIT ?'),
    eventsBetween: p('SELECT seq, bytes, body FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq'),
    eventsAfter: p('SELECT seq, bytes, body FROM events WHERE seq > ? ORDER BY seq'),
    clients: p('SELECT key, mark, seen_at FROM clients WHERE seen_at >= ?'),
    answers: p('SELECT a.client, a.op_id, a.digest, a.answer FROM answers a JOIN clients c ON c.key = a.client WHERE c.seen_at >= ? ORDER BY a.client, a.op_id'),
    writeClient: p('INSERT INTO clients (key, mark, seen_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET mark = excluded.mark, seen_at = excluded.seen_at'),
    forgetAnswers: p('DELETE FROM answers WHERE client = ?'),
    insertAnswer: p('INSERT OR REPLACE INTO answers (client, op_id, digest, answer) VALUES (?, ?, ?, ?)'),
    trimAnswers: p('DELETE FROM answers WHERE client = ? AND op_id <= ?'),
    expiredAnswers: p('DELETE FROM answers WHERE client IN (SELECT key FROM clients WHERE seen_at < ?)'),
    expiredClients: p('DELETE FROM clients WHERE seen_at < ?'),
  }
}

/** The prepared statements. */
export type Statements = ReturnType<typeof prepareStatements>
