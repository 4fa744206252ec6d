/**
 * Faults injected through the file storage's `fs` option: a write that comes back short and then
 * fails (a full disk), a flush that throws. Nothing unflushed is acknowledged, the storage answers
 * 503 until it recovers, and no event id ever carries two contents.
 */
import * as nodeFs from 'node:fs'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { FileSystem } from '../src/file/index'
import { newClientId } from '../src/id'
import { createFetchHandler } from '../src/server/index'
import type { CommittedEvent } from '../src/server/storage'
import { freshDir, openFile, proposer, removeDirs } from './support/fileUniverse'
import { until } from './support/until'

afterEach(removeDirs)

type Fault = 'short-then-efbig' | 'efbig' | 'short-once' | 'fsync-eio' | 'write-enospc'

/** node:fs, with one fault armed on the next write to (or flush of) `log.jsonl`. */
function faultyFs() {
  const logFds = new Set<number>()
  let armed: Fault | undefined
  const systemError = (code: string) => Object.assign(new Error(`${code}: injected`), { code })
  const fs: FileSystem = {
    ...nodeFs,
    openSync: ((path: nodeFs.PathLike, flags: nodeFs.OpenMode, mode?: nodeFs.Mode) => {
      const fd = nodeFs.openSync(path, flags, mode)
      if (String(path).endsWith('log.jsonl')) logFds.add(fd)
      return fd
    }) as typeof nodeFs.openSync,
    writeSync: ((fd: number, buffer: Uint8Array, offset: number, length: number) => {
      if (!logFds.has(fd) || armed === undefined || armed === 'fsync-eio') return nodeFs.writeSync(fd, buffer, offset, length)
      const fault = armed
      armed = fault === 'short-then-efbig' ? 'efbig' : undefined
      if (fault === 'write-enospc') throw systemError('ENOSPC')
      if (fault === 'efbig') throw systemError('EFBIG')
      // Half the bytes really land, as when a file reaches its size limit.
      return nodeFs.writeSync(fd, buffer, offset, Math.max(1, Math.floor(length / 2)))
    }) as typeof nodeFs.writeSync,
    fsyncSync: (fd: number) => {
      if (logFds.has(fd) && armed === 'fsync-eio') {
        armed = undefined
        throw systemError('EIO')
      }
      nodeFs.fsyncSync(fd)
    },
  }
  return { fs, arm: (fault: Fault) => void (armed = fault) }
}

/** Every event id with the content it was published with, across restarts: one content per id. */
function eventChecker() {
  const seen = new Map<string, string>()
  return {
    see(event: Pick<CommittedEvent, 'id' | 'storeKey' | 'version' | 'state'>) {
      const content = JSON.stringify([event.storeKey, event.version, event.state])
      const before = seen.get(event.id)
      if (before !== undefined && before !== content) throw new Error(`event ${event.id} carried ${before} and then ${content}`)
      seen.set(event.id, content)
    },
    seen,
  }
}

describe.each([
  ['a write that comes back short and then fails (EFBIG)', 'short-then-efbig'],
  ['a write that throws ENOSPC', 'write-enospc'],
  ['a flush that throws EIO', 'fsync-eio'],
] as const)('file storage, %s', (_, fault) => {
  it('acknowledges nothing, answers 503 until it recovers, then continues with the next seq', async () => {
    const dir = freshDir()
    const faults = faultyFs()
    const checker = eventChecker()
    const first = await openFile(dir, { fs: faults.fs, recoverEveryMs: 0 })
    first.universe.onCommit((entry) => checker.see(entry.event))
    const write = proposer(first.universe)
    const acknowledged: Array<{ version: number; state: unknown }> = []
    for (let v = 0; v < 3; v++) acknowledged.push(await write(v, `ok-${v + 1}`, v + 1) as { version: number; state: unknown })

    faults.arm(fault)
    await expect(write(3, 'lost', 4)).rejects.toMatchObject({ code: 'unavailable' })
    expect(first.storage.health()).toMatchObject({ ok: false })
    expect((first.storage.health() as { reason: string }).reason).toMatch(fault === 'fsync-eio' ? /EIO/ : /EFBIG|ENOSPC/)

    // While failed, the server answers 503 to every proposal, whatever the disk does meanwhile.
    const handler = createFetchHandler(first.universe)
    const response = await handler(
      new Request('http://localhost/zuno/sync', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ storeKey: 'counter', baseVersion: 3, state: 'also lost', clientId: newClientId(), opId: 1, epoch: first.universe.epoch }),
      }),
    )
    expect(response.status).toBe(503)
    expect(await response.json()).toMatchObject({ ok: false, error: 'unavailable' })
    await expect(write(3, 'lost', 4)).rejects.toMatchObject({ code: 'unavailable' })

    expect(first.storage.recover()).toBe(true)
    expect(first.storage.health()).toEqual({ ok: true })
    // Other content for the same version, from the op the failure left unprocessed.
    const next = await write(3, 'after', 4)
    expect(next).toMatchObject({ type: 'accepted', version: 4, state: 'after' })
    acknowledged.push(next as { version: number; state: unknown })
    expect(first.universe.cursor).toMatch(/-4$/) // the next seq, not one skipped

    await first.close()
    expect(readFileSync(join(dir, 'log.jsonl'), 'utf8')).not.toContain('lost')
    const second = await openFile(dir)
    const replayed = second.universe.since(`${second.universe.epoch}-0`) ?? []
    for (const entry of replayed) checker.see(entry.event)
    expect(replayed.map(({ event }) => ({ version: event.version, state: event.state }))).toEqual(
      acknowledged.map(({ version, state }) => ({ version, state })),
    )
    expect(second.universe.store('counter').get()).toBe('after')
    await second.close()
  })
})

describe('file storage faults', () => {
  it('loops on a short write that the disk then completes: the write is acknowledged whole', async () => {
    const dir = freshDir()
    const faults = faultyFs()
    const first = await openFile(dir, { fs: faults.fs })
    faults.arm('short-once')
    expect(await proposer(first.universe)(0, 'whole', 1)).toMatchObject({ type: 'accepted', version: 1 })
    expect(first.storage.health()).toEqual({ ok: true })
    await first.close()
    const second = await openFile(dir)
    expect(second.universe.store('counter').get()).toBe('whole')
    await second.close()
  })

  it('recovers by itself on its retry timer', async () => {
    const dir = freshDir()
    const faults = faultyFs()
    const first = await openFile(dir, { fs: faults.fs, recoverEveryMs: 5 })
    faults.arm('fsync-eio')
    await expect(proposer(first.universe)(0, 'lost', 1)).rejects.toMatchObject({ code: 'unavailable' })
    await until(() => first.storage.health().ok)
    expect(await proposer(first.universe)(0, 'kept', 1)).toMatchObject({ type: 'accepted', version: 1 })
    await first.close()
  })
})
