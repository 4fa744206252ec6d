import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createUniverse, type LogEntry } from '../src/server/index'
import { freshDir, openFile, proposer, removeDirs } from './support/fileUniverse'

afterEach(removeDirs)

describe('events of the in-process storages (one object: the event and its log entry)', () => {
  it('serialize as JSON with their id, and nothing more, as before', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    await universe.ready
    const seen: LogEntry[] = []
    universe.onCommit((entry) => seen.push(entry))
    await proposer(universe)(0, 1, 1)
    const { event } = seen[0] as LogEntry
    // An app that logs or forwards `entry.event` (res.json, a queue) got the id before the change.
    expect(JSON.parse(JSON.stringify(event))).toEqual({
      storeKey: 'counter',
      version: 1,
      state: 1,
      writer: event.writer,
      opId: 1,
      seq: 1,
      stateBytes: 1,
      id: event.id,
    })
    expect(Object.keys(event)).not.toContain('epoch')
  })

  it('leave the file log lines as they were: no epoch on every line', async () => {
    const dir = freshDir()
    const first = await openFile(dir)
    await proposer(first.universe)(0, 1, 1)
    await first.close()
    const line = JSON.parse(readFileSync(join(dir, 'log.jsonl'), 'utf8').trim()) as Record<string, unknown>
    expect(Object.keys(line).sort()).toEqual(['at', 'clientId', 'digest', 'opId', 'principal', 'seq', 'state', 'stateBytes', 'storeKey', 'version', 'writer'])
  })
})
