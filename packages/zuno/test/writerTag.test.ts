import { createHash, randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { newClientId } from '../src/id'
import { writerTag } from '../src/writerTag'
import { sha256 } from '../src/sha256'

describe('writer tags', () => {
  it('hash with SHA-256 exactly as node:crypto does, at every length around the block boundaries', () => {
    for (const length of [0, 1, 38, 39, 55, 56, 63, 64, 65, 119, 120, 1000]) {
      const bytes = randomBytes(length)
      expect(Buffer.from(sha256(bytes)).toString('hex'), `${length} bytes`).toBe(createHash('sha256').update(bytes).digest('hex'))
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(Buffer.from(sha256(bytes)).toString('hex')).toBe(createHash('sha256').update(bytes).digest('hex'))
      }),
      { numRuns: 300, seed: 20261126 },
    )
  })

  it('are the first 96 bits of the SHA-256 of the client id, and give nothing of the id away', () => {
    const clientId = newClientId()
    const expected = createHash('sha256').update(clientId).digest('base64url').slice(0, 16)
    expect(writerTag(clientId)).toBe(expected)
    // Unlike a prefix, the tag shares nothing with the id: an id made to start with someone's tag does not carry it.
    const victim = newClientId()
    const forged = `${writerTag(victim)}.${'x'.repeat(22)}`
    expect(writerTag(forged)).not.toBe(writerTag(victim))
    expect(clientId.includes(writerTag(clientId))).toBe(false)
  })
})
