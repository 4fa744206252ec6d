import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { base36, ClientLedger, clientKey, opDigest, parseClientKey } from '../src/server/clientLedger'
import type { OpAnswer, OpIdentity } from '../src/server/storage'

/** A ledger on a clock the test moves, with a 1,000 ms client lifetime (so it sweeps every 250 ms). */
function ledgerAt(start = 0) {
  const clock = { now: start }
  const ledger = new ClientLedger({ clientLifetimeMs: 1000, idempotencyWindow: 2, now: () => clock.now })
  const ops = new Map<string, number>()
  /** Processes `client`'s next op now, as a storage does: decide, then record. */
  const process = (clientId: string): OpIdentity => {
    const opId = (ops.get(clientId) ?? 0) + 1
    const op: OpIdentity = { principal: '', clientId, opId, digest: `d${opId}` }
    expect(ledger.decide(op)).toBeUndefined()
    ledger.recordAccepted(op, 's', opId, opId)
    ops.set(clientId, opId)
    return op
  }
  return { clock, ledger, process }
}

function accepted(version: number): OpAnswer {
  return { type: 'accepted', storeKey: 's', version, seq: version }
}

const clients = (ledger: ClientLedger) => ledger.entries().map(([key]) => key.split(':').at(-1))

describe('op digests', () => {
  it('stay the ones earlier releases wrote down, so a retry across an upgrade is still a retry', () => {
    // A file storage's log and snapshot, and Redis's client hashes, keep these strings; a rolling
    // deploy has old and new instances on one Redis. A digest computed another way turns the retry
    // of an op in doubt (sent just before a restart, the answer lost) into `op_id_reused`.
    // Values computed by 45dc4fa (the release before the digest was rewritten).
    expect(opDigest('todos', 0, '{"x":1}')).toBe('todos:0:7:28f9qrtkldr')
    expect(opDigest('a', 2 ** 33 + 5, '"é😀"')).toBe('a:8589934597:5:tmiskt81tp')
    expect(opDigest('a', 0, '""')).toBe('a:0:2:3nj1ggyqd3')
    // The fast base 36 writes exactly what toString(36) writes, for every 53-bit hash.
    for (const n of [0, 35, 36, 60_466_175, 60_466_176, 2 ** 53 - 1]) expect(base36(n)).toBe(n.toString(36))
    fc.assert(fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => base36(n) === n.toString(36)), { numRuns: 5000 })
  })
})

describe('the client ledger', () => {
  it('forgets a client idle for its lifetime, even behind a busy client whose place in line is stale', () => {
    const { clock, ledger, process } = ledgerAt()
    process('busy') // moves to the back at 0
    clock.now = 100
    process('idle') // moves to the back at 100, behind busy
    clock.now = 200
    process('busy') // seen at 200, but not moved again within the sweep interval: still first in line
    clock.now = 1150 // idle is past its lifetime; busy, first in line, is not
    expect(clients(ledger)).toEqual(['busy'])
  })

  it('answers a retry within the window, and an op past a forgotten client as unknown', () => {
    const { clock, ledger, process } = ledgerAt()
    const first = process('a')
    const second = process('a')
    expect(ledger.decide(second)).toEqual({ type: 'answered', answer: accepted(2) })
    expect(ledger.decide({ ...first, digest: 'other' })).toEqual({ type: 'reused' })
    process('a')
    // Out of the window of 2: processed, answer gone.
    expect(ledger.decide(first)).toEqual({ type: 'processed' })
    clock.now = 1001 // a's last op was at 0: forgotten, whether or not a sweep ran
    expect(ledger.decide({ principal: '', clientId: 'a', opId: 4, digest: 'd4' })).toEqual({ type: 'unknown_client' })
    expect(clients(ledger)).toEqual([])
  })

  it('keeps a client that keeps writing, however long it runs, and only the clients seen within the lifetime', () => {
    const { clock, ledger, process } = ledgerAt()
    for (let t = 0; t <= 5000; t += 50) {
      clock.now = t
      process('steady')
      if (t % 1000 === 0) process(`once-${t}`)
    }
    // At 5,000: seen within the last 1,000 ms are steady and once-5000 (once-4000 is exactly 1,000 ms old and still kept).
    expect(clients(ledger).sort()).toEqual(['once-4000', 'once-5000', 'steady'])
    expect(ledger.decide({ principal: '', clientId: 'steady', opId: 102, digest: 'd102' })).toBeUndefined()
  })

  it('still forgets idle clients after the clock was stepped ahead and back while a busy client wrote', () => {
    const { clock, ledger, process } = ledgerAt(10_000)
    clock.now = 1e12 // a clock stepped far ahead (a bad NTP step, a VM resumed), then corrected
    process('busy') // moves to the back with the wrong time
    clock.now = 10_100
    for (let t = 10_100; t <= 13_000; t += 100) {
      clock.now = t
      process('busy') // in use all along: its place must follow the corrected clock again
      if (t === 10_500) process('idle')
    }
    // idle was last seen at 10,500, 2,500 ms ago: forgotten, not kept (in memory and in every snapshot) until 1e12.
    expect(clients(ledger)).toEqual(['busy'])
  })

  it('keeps the last answers in a ring reused in place: the right answer for each op, oldest first when written down', () => {
    const { ledger, process } = ledgerAt()
    const refusal = { type: 'refused' as const, storeKey: 's', error: 'forbidden' as const, message: 'no' }
    const op = (opId: number): OpIdentity => ({ principal: '', clientId: 'r', opId, digest: `d${opId}` })
    const ops = [process('r'), process('r'), op(3), op(4), op(5)]
    expect(ledger.decide(op(3))).toBeUndefined()
    ledger.recordRefused(op(3), refusal) // overwrites op 1's slot
    for (const opId of [4, 5]) {
      // ops 4 and 5 overwrite op 2's slot and then the refusal's
      expect(ledger.decide(op(opId))).toBeUndefined()
      ledger.recordAccepted(op(opId), 's', opId, opId)
    }
    const third = op(3)
    expect(ledger.decide(ops[3] as OpIdentity)).toEqual({ type: 'answered', answer: accepted(4) })
    expect(ledger.decide(ops[4] as OpIdentity)).toEqual({ type: 'answered', answer: accepted(5) })
    expect(ledger.decide(third)).toEqual({ type: 'processed' })
    const [[, record] = []] = ledger.entries()
    expect(record?.answers.map(({ opId, answer }) => [opId, answer.type === 'accepted' ? answer.version : answer.error])).toEqual([
      [4, 4],
      [5, 5],
    ])
    // Before the refusal's slot is reused, it answers as a refusal; a smaller window keeps the newest answers.
    const { ledger: other, process: processOther } = ledgerAt()
    processOther('q')
    const refused: OpIdentity = { principal: '', clientId: 'q', opId: 2, digest: 'd2' }
    other.decide(refused)
    other.recordRefused(refused, refusal)
    expect(other.decide(refused)).toEqual({ type: 'answered', answer: refusal })
    const narrow = new ClientLedger({ idempotencyWindow: 1, now: () => 0 })
    narrow.restore(other.entries())
    expect(narrow.decide(refused)).toEqual({ type: 'answered', answer: refusal })
    expect(narrow.decide({ principal: '', clientId: 'q', opId: 1, digest: 'd1' })).toEqual({ type: 'processed' })
  })

  it('keeps one client id under two principals apart, written down and restored too', () => {
    const ledger = new ClientLedger({ now: () => 0 })
    const op = (principal: string, opId: number): OpIdentity => ({ principal, clientId: 'same', opId, digest: `${principal}${opId}` })
    for (const principal of ['alice', 'a:b', '']) {
      expect(ledger.decide(op(principal, 1))).toBeUndefined()
      ledger.recordAccepted(op(principal, 1), principal, 1, 1)
    }
    expect(ledger.decide(op('alice', 2))).toBeUndefined()
    ledger.recordAccepted(op('alice', 2), 'alice', 2, 2)
    // Each principal's mark is its own: a:b's next op is 2, and its op 1 answers with its own answer.
    expect(ledger.decide(op('a:b', 2))).toBeUndefined()
    expect(ledger.decide(op('a:b', 1))).toEqual({ type: 'answered', answer: { type: 'accepted', storeKey: 'a:b', version: 1, seq: 1 } })
    const restored = new ClientLedger({ now: () => 0 })
    restored.restore(ledger.entries())
    expect(restored.entries()).toEqual(ledger.entries())
    expect(restored.decide(op('alice', 3))).toBeUndefined()
    expect(restored.decide(op('', 2))).toBeUndefined()
    fc.assert(fc.property(fc.string(), fc.string(), (principal, clientId) => {
      const parsed = parseClientKey(clientKey({ principal, clientId }))
      return parsed.principal === principal && parsed.clientId === clientId
    }))
  })

  it('writes records down and restores them in order of use', () => {
    const { clock, ledger, process } = ledgerAt()
    process('x')
    clock.now = 300
    process('y')
    clock.now = 600
    process('x')
    const written = ledger.entries()
    expect(written.map(([key, record]) => [key.split(':').at(-1), record.seenAt])).toEqual([
      ['y', 300],
      ['x', 600],
    ])
    expect(Object.keys(written[0]?.[1] ?? {}).sort()).toEqual(['answers', 'mark', 'seenAt'])
    const restored = new ClientLedger({ clientLifetimeMs: 1000, now: () => 1200 })
    restored.restore(written)
    // At 1,200 a use after 200 is within the lifetime: both stay. At 1,450 y (300) has expired.
    expect(restored.entries().map(([key]) => key.split(':').at(-1))).toEqual(['y', 'x'])
    const later = new ClientLedger({ clientLifetimeMs: 1000, now: () => 1450 })
    later.restore(written)
    expect(later.entries().map(([key]) => key.split(':').at(-1))).toEqual(['x'])
  })
})
