import { describe, expect, it } from 'vitest'
import { writerTag } from '../../src/protocol'
import type { CommittedEvent } from '../../src/server/index'
import { checkAcknowledged, checkContiguous, checkExactlyOnce, checkLinearizable } from './checkers'
import type { Attempt } from './simNetwork'

const write = (seq: number, version: number, clientId: string, opId: number, state: unknown): CommittedEvent => ({
  storeKey: 's',
  version,
  state,
  writer: writerTag(clientId),
  opId,
  seq,
  id: `e-${seq}`,
})
const attempt = (fields: Partial<Attempt>): Attempt => ({
  clientId: 'a',
  epoch: 'e',
  storeKey: 's',
  opId: 1,
  baseVersion: 0,
  state: 1,
  invokedAt: 0,
  ...fields,
})

describe('simulation checkers catch what they claim to', () => {
  const good = [write(1, 1, 'a', 1, 1), write(2, 2, 'b', 1, 2)]

  it('pass a correct history', () => {
    const attempts = [
      attempt({ clientId: 'a', opId: 1, invokedAt: 0, respondedAt: 5, status: 200, answer: { version: 1, state: 1 } }),
      attempt({ clientId: 'b', opId: 1, baseVersion: 1, state: 2, invokedAt: 6, respondedAt: 9, status: 200, answer: { version: 2, state: 2 } }),
    ]
    expect([...checkContiguous(good), ...checkExactlyOnce(good), ...checkLinearizable(attempts, good, { s: 0 })]).toEqual([])
  })

  it('catch a gap in versions and a double application', () => {
    expect(checkContiguous([write(1, 1, 'a', 1, 1), write(2, 3, 'b', 1, 2)])).toHaveLength(1)
    expect(checkExactlyOnce([write(1, 1, 'a', 1, 1), write(2, 2, 'a', 1, 1)])).toHaveLength(1)
  })

  it('catch a lost acknowledged write and an applied rejected one', () => {
    const writers = new Map(['a', 'b', 'c'].map((name) => [name, new Set([writerTag(name)])]))
    const fine = [
      { replica: 'a', storeKey: 's', outcome: 'resolved' as const, version: 1 },
      { replica: 'b', storeKey: 's', outcome: 'resolved' as const, version: 2 },
    ]
    expect(checkAcknowledged(fine, new Map([['e', good]]), writers)).toEqual([])
    // Acknowledged, but the log has no such write (or another replica's).
    expect(checkAcknowledged([...fine, { replica: 'c', storeKey: 's', outcome: 'resolved', version: 3 }], new Map([['e', good]]), writers)).toHaveLength(2)
    expect(checkAcknowledged([{ replica: 'c', storeKey: 's', outcome: 'resolved', version: 2 }], new Map([['e', good]]), writers).length).toBeGreaterThan(0)
    // Rejected, yet applied.
    expect(checkAcknowledged([fine[0] as (typeof fine)[0], { replica: 'b', storeKey: 's', outcome: 'rejected' }], new Map([['e', good]]), writers)).toHaveLength(1)
    // Of unknown outcome: applied or not, both fine.
    expect(checkAcknowledged([fine[0] as (typeof fine)[0], { replica: 'b', storeKey: 's', outcome: 'rejected', error: 'outcome_unknown' }], new Map([['e', good]]), writers)).toEqual([])
    expect(checkAcknowledged([{ replica: 'b', storeKey: 's', outcome: 'pending' }], new Map([['e', good]]), writers).length).toBeGreaterThan(0)
  })

  it('catch a write ordered against real time', () => {
    // b's write was acknowledged (as v2) before a's was even sent, yet a's got the higher version.
    const history = [write(1, 1, 'b', 1, 1), write(2, 2, 'a', 1, 2)]
    const attempts = [
      attempt({ clientId: 'b', opId: 1, invokedAt: 0, respondedAt: 2, status: 200, answer: { version: 1, state: 1 } }),
      attempt({ clientId: 'a', opId: 1, baseVersion: 1, invokedAt: 3, respondedAt: 4, status: 200, answer: { version: 2, state: 2 } }),
    ]
    expect(checkLinearizable(attempts, history, { s: 0 })).toEqual([])
    const swapped = [write(1, 1, 'a', 1, 1), write(2, 2, 'b', 1, 2)]
    const late = [
      attempt({ clientId: 'b', opId: 1, invokedAt: 0, respondedAt: 2, status: 200, answer: { version: 2, state: 2 } }),
      attempt({ clientId: 'a', opId: 1, invokedAt: 3, respondedAt: 4, status: 200, answer: { version: 1, state: 1 } }),
    ]
    expect(checkLinearizable(late, swapped, { s: 0 }).length).toBeGreaterThan(0)
  })

  it('catch a stale or invented conflict answer', () => {
    const stale = attempt({ clientId: 'c', opId: 1, invokedAt: 20, respondedAt: 21, status: 409, answer: { version: 1, state: 1 } })
    const acks = [
      attempt({ clientId: 'a', opId: 1, invokedAt: 0, respondedAt: 5, status: 200, answer: { version: 1, state: 1 } }),
      attempt({ clientId: 'b', opId: 1, baseVersion: 1, invokedAt: 6, respondedAt: 9, status: 200, answer: { version: 2, state: 2 } }),
    ]
    expect(checkLinearizable([...acks, stale], good, { s: 0 })).toHaveLength(1)
    const invented = attempt({ clientId: 'c', opId: 1, invokedAt: 20, respondedAt: 21, status: 409, answer: { version: 2, state: 99 } })
    expect(checkLinearizable([...acks, invented], good, { s: 0 })).toHaveLength(1)
  })
})
