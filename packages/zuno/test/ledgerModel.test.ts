import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ClientLedger, type ClientRecord } from '../src/server/clientLedger'
import type { CommitOutcome, OpAnswer, OpIdentity } from '../src/server/storage'

interface ModelRecord { mark: number; answers: Array<{ opId: number; digest: string; answer: OpAnswer }>; seenAt: number }

const LIFETIME = 1000
const principals = ['', 'a', 'a:b', '1:a']
const clientIds = ['c', 'b:c', 'a:c']

describe('ledger vs model', () => {
  it('agrees with a plain model through wraps, restores into other windows, sweeps and shared client ids', () => {
    const step = fc.record({
      p: fc.integer({ min: 0, max: principals.length - 1 }),
      c: fc.integer({ min: 0, max: clientIds.length - 1 }),
      delta: fc.integer({ min: -5, max: 2 }),
      digest: fc.constantFrom('x', 'y'),
      refuse: fc.boolean(),
      dt: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 400 })),
      restore: fc.option(fc.integer({ min: 1, max: 6 }), { freq: 8 }),
    })
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(step, { maxLength: 200 }), (window0, steps) => {
        const clock = { now: 0 }
        let window = window0
        let ledger = new ClientLedger({ idempotencyWindow: window, clientLifetimeMs: LIFETIME, now: () => clock.now })
        const model = new Map<string, ModelRecord>()
        let seq = 0
        const live = (key: string) => {
          const r = model.get(key)
          return r !== undefined && r.seenAt >= clock.now - LIFETIME ? r : undefined
        }
        for (const s of steps) {
          clock.now += s.dt
          if (s.restore !== null) {
            const entries = JSON.parse(JSON.stringify(ledger.entries())) as Array<[string, ClientRecord]>
            window = s.restore
            ledger = new ClientLedger({ idempotencyWindow: window, clientLifetimeMs: LIFETIME, now: () => clock.now })
            ledger.restore(entries)
            for (const [k, r] of model) {
              if (live(k) === undefined) model.delete(k)
              else r.answers = r.answers.slice(-window)
            }
          }
          const principal = principals[s.p] as string
          const clientId = clientIds[s.c] as string
          const key = JSON.stringify([principal, clientId])
          const rec = live(key)
          const mark = rec?.mark ?? 0
          const opId = Math.max(1, mark + 1 + s.delta)
          const op: OpIdentity = { principal, clientId, opId, digest: `${s.digest}${opId}` }
          let expected: CommitOutcome | undefined
          if (opId > mark) expected = opId === mark + 1 ? undefined : { type: 'unknown_client' }
          else {
            const kept = rec?.answers.find((a) => a.opId === opId)
            expected = kept === undefined ? { type: 'processed' } : kept.digest === op.digest ? { type: 'answered', answer: kept.answer } : { type: 'reused' }
          }
          expect(ledger.decide(op)).toEqual(expected)
          if (expected === undefined) {
            let answer: OpAnswer
            if (s.refuse) {
              answer = { type: 'refused', storeKey: 's', error: 'forbidden', message: 'no' }
              ledger.recordRefused(op, answer)
            } else {
              seq += 1
              answer = { type: 'accepted', storeKey: `s${s.p}`, version: seq, seq }
              ledger.recordAccepted(op, answer.storeKey, seq, seq)
            }
            const r = rec ?? { mark: 0, answers: [], seenAt: clock.now }
            r.answers.push({ opId, digest: op.digest, answer })
            r.answers = r.answers.slice(-window)
            r.mark = opId
            r.seenAt = clock.now
            model.set(key, r)
          }
        }
      }),
      { numRuns: 3000 },
    )
  })
})
