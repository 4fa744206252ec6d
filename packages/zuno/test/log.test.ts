import { describe, expect, it } from 'vitest'
import { EventLog, type LogEntry } from '../src/server/index'

const entry = (seq: number, bytes = 1): LogEntry => {
  const frame = new Uint8Array(bytes)
  return { event: { storeKey: 's', version: seq, state: seq, writer: 'c', opId: seq, seq, id: `ep-${seq}` }, frame, wholeFrame: frame }
}

const seqs = (entries: LogEntry[] | undefined) => entries?.map((e) => e.event.seq)

describe('EventLog', () => {
  it('starts with a cursor at the last committed sequence', () => {
    expect(new EventLog('ep', 0, 10).cursor).toBe('ep-0')
    expect(new EventLog('ep', 42, 10).cursor).toBe('ep-42')
  })

  it('answers everything after an id it still holds', () => {
    const log = new EventLog('ep', 0, 10)
    for (let seq = 1; seq <= 5; seq++) log.append(entry(seq))
    expect(log.cursor).toBe('ep-5')
    expect(seqs(log.since('ep-0'))).toEqual([1, 2, 3, 4, 5])
    expect(seqs(log.since('ep-3'))).toEqual([4, 5])
    expect(seqs(log.since('ep-5'))).toEqual([])
  })

  it('keeps only the last `retention` events and says when an id is too old', () => {
    const log = new EventLog('ep', 0, 3)
    for (let seq = 1; seq <= 10; seq++) log.append(entry(seq))
    expect(seqs(log.since('ep-7'))).toEqual([8, 9, 10])
    expect(log.since('ep-6')).toBeUndefined()
    expect(log.since('ep-0')).toBeUndefined()
  })

  it('keeps no more than `retentionBytes` of frames, however many events it may keep', () => {
    // 10,000 events of 1 MB would be 10 GB; with a 3 MB bound three stay.
    const log = new EventLog('ep', 0, 10_000, 3_000_000)
    for (let seq = 1; seq <= 50; seq++) log.append(entry(seq, 1_000_000))
    expect(log.size).toBe(3)
    expect(log.bytes).toBe(3_000_000)
    expect(seqs(log.since('ep-47'))).toEqual([48, 49, 50])
    expect(log.since('ep-46')).toBeUndefined()
    // Small events fill the room the big ones leave.
    for (let seq = 51; seq <= 60; seq++) log.append(entry(seq, 10))
    expect(seqs(log.since('ep-48'))).toEqual([49, 50, ...Array.from({ length: 10 }, (_, i) => 51 + i)])
    // The newest event stays, whatever its size.
    log.append(entry(61, 5_000_000))
    expect(log.size).toBe(1)
    expect(seqs(log.since('ep-60'))).toEqual([61])
  })

  it('refuses ids of another epoch, from the future, or malformed', () => {
    const log = new EventLog('ep', 0, 3)
    log.append(entry(1))
    for (const id of ['other-1', 'ep-2', 'ep', 'ep-', '-1', 'ep-1.5', 'ep--1', '']) {
      expect(log.since(id), id).toBeUndefined()
    }
  })

  it('cannot serve ids from before a gap in the sequence', () => {
    const log = new EventLog('ep', 0, 10)
    log.append(entry(1))
    log.append(entry(5))
    expect(log.since('ep-1')).toBeUndefined()
    expect(seqs(log.since('ep-4'))).toEqual([5])
  })

  it('starts empty after a restart at a later sequence', () => {
    const log = new EventLog('ep', 100, 10)
    expect(seqs(log.since('ep-100'))).toEqual([])
    expect(log.since('ep-99')).toBeUndefined()
  })
})

describe('EventLog.backfill (the history a storage reads after a start)', () => {
  it('puts back the newest events before the first kept, within the count and byte bounds, and serves them', () => {
    const log = new EventLog('ep', 5, 4, 40)
    log.append(entry(6, 10))
    // Seqs 1–5, oldest first: room for 3 more by count; the bytes (10 each of 40) hold them.
    expect(log.backfill([1, 2, 3, 4, 5].map((seq) => entry(seq, 10)))).toBe(3)
    expect(seqs(log.since('ep-2'))).toEqual([3, 4, 5, 6])
    expect(log.since('ep-1')).toBeUndefined()
    // Full now: nothing more fits, and the newest stay whole.
    expect(log.backfill([entry(2, 1)])).toBe(0)
    log.append(entry(7, 10))
    expect(seqs(log.since('ep-3'))).toEqual([4, 5, 6, 7])
  })

  it('stops at a gap or at the byte bound, and at the smallest retention keeps only what was applied', () => {
    const bytes = new EventLog('ep', 3, 10, 25)
    bytes.append(entry(4, 10))
    expect(bytes.backfill([1, 2, 3].map((seq) => entry(seq, 10)))).toBe(1)
    expect(seqs(bytes.since('ep-2'))).toEqual([3, 4])
    const gap = new EventLog('ep', 3, 10)
    expect(gap.backfill([entry(1), entry(2)])).toBe(0)
    const one = new EventLog('ep', 3, 1)
    one.append(entry(4))
    expect(one.backfill([entry(3)])).toBe(0)
    expect(seqs(one.since('ep-3'))).toEqual([4])
  })
})
