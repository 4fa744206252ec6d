/** The storages the many-stores suite compares, opened the same way by the server and the filler. */
import { createFileStorage } from 'zuno/file'
import { createSqliteStorage } from 'zuno/sqlite'
import type { Storage } from 'zuno/server'
import { createRedisStorage } from 'zuno-redis'

/** `file`: the JSONL log, read whole at start; `redis` and `sqlite`: read lazily. */
export type StorageKind = 'file' | 'redis' | 'sqlite'

export function openStorage(kind: StorageKind, where: { dir?: string | undefined; namespace?: string | undefined }): Storage {
  switch (kind) {
    case 'file':
      return createFileStorage({ dir: where.dir as string, fsync: 'never' })
    case 'sqlite':
      return createSqliteStorage({ dir: where.dir as string, fsync: 'never' })
    case 'redis':
      return createRedisStorage({ namespace: where.namespace as string })
    default:
      throw new Error(`Unknown storage ${String(kind)}`)
  }
}
