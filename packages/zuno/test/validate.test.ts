import { newClientId } from '../src/id'
import type { SyncRequest } from '../src/protocol'
import { describe, expect, it } from 'vitest'
import { isJsonContentType, parseProposalText } from '../src/server/index'
import fc from 'fast-check'
import { valueExceedsDepth } from '../src/server/json'
import { scanJsonText, TEXT_HUGE_NUMBER, TEXT_OK, TEXT_TOO_DEEP, textExceedsDepth } from '../src/server/validate'

/** Whether a parsed JSON value holds a number JSON cannot say back (Infinity from 1e400 and the like). */
function holdsNonFinite(value: unknown): boolean {
  if (typeof value === 'number') return !Number.isFinite(value)
  if (typeof value !== 'object' || value === null) return false
  return Object.values(value).some(holdsNonFinite)
}

/** Depth of a parsed JSON value, counting arrays and objects. */
function depthOf(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0
  return 1 + Math.max(0, ...Object.values(value).map(depthOf))
}

describe('request validation', () => {
  it('measures depth in text, ignoring brackets inside strings', () => {
    expect(textExceedsDepth('[[[]]]', 3)).toBe(false)
    expect(textExceedsDepth('[[[[]]]]', 3)).toBe(true)
    expect(textExceedsDepth('{"a":"[[[[[[[[\\"[[["}', 1)).toBe(false)
    expect(textExceedsDepth('[' .repeat(1_000_000), 64)).toBe(true)
  })

  it('skips strings with escaped quotes and backslashes', () => {
    expect(textExceedsDepth('["\\\\"]', 1)).toBe(false) // a string holding two backslashes
    expect(textExceedsDepth('["\\\\", [1]]', 1)).toBe(true) // the quote after them closes it
    expect(textExceedsDepth('["\\\"[[", 1]', 1)).toBe(false) // an escaped quote does not
    expect(scanJsonText('"unterminated [[[[', 1)).toBe(TEXT_OK) // JSON.parse refuses it anyway
  })

  it('measures the depth of any JSON text as its parsed value has it, whatever its strings hold', () => {
    // Strings of quotes, backslashes and brackets, short and past the length read one by one, so
    // escapes fall on each side of the point where the scan jumps ahead with indexOf.
    const tricky = fc.array(fc.constantFrom('"', '\\', '[', '{', 'a', ']'), { maxLength: 60 }).map((chars) => chars.join(''))
    const leaf = fc.oneof(tricky, fc.string(), fc.integer(), fc.constant(null))
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('node'), { maxLength: 3 }), fc.dictionary(tricky, tie('node'), { maxKeys: 3 })),
    })).node
    fc.assert(
      fc.property(value, fc.integer({ min: 0, max: 6 }), (parsed, maxDepth) => {
        const text = JSON.stringify(parsed)
        return textExceedsDepth(text, maxDepth) === depthOf(JSON.parse(text)) > maxDepth
      }),
      { numRuns: 3000 },
    )
  })

  it('flags every number that parses to Infinity, outside strings only when it matters', () => {
    for (const text of ['1e400', '[-1E+309]', '{"a":12e999}', `${'9'.repeat(309)}`, `[0.5, ${'1'.repeat(400)}.5]`]) {
      expect(holdsNonFinite(JSON.parse(text))).toBe(true)
      expect(scanJsonText(text, 64)).toBe(TEXT_HUGE_NUMBER)
    }
    for (const text of ['[true, false, 1e-400, 1e99, 12345]', '{"e123":"1e400"}', 'true']) {
      expect(scanJsonText(text, 64)).toBe(TEXT_OK)
    }
    expect(scanJsonText('[[1e400]]', 1)).toBe(TEXT_TOO_DEEP)
  })

  it('flags a long mantissa whose short exponent carries it past the largest double', () => {
    // 300 digits times 10^9, 251 digits times 10^99, 308 nines and a fraction times 10: each is Infinity.
    for (const text of [`${'9'.repeat(300)}e9`, `[1${'0'.repeat(250)}E+99]`, `{"a":${'9'.repeat(308)}.5e1}`]) {
      expect(holdsNonFinite(JSON.parse(text))).toBe(true)
      expect(scanJsonText(text, 64)).toBe(TEXT_HUGE_NUMBER)
      expect(() => parseProposalText(`{"storeKey":"a","baseVersion":0,"epoch":"e1","clientId":"${newClientId()}","opId":1,"state":${text}}`, 64)).toThrow(/finite|JSON/)
    }
    // Long mantissas, short exponents, leading fractions: any mix, never missed.
    const number = fc
      .tuple(fc.integer({ min: 1, max: 320 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 99 }), fc.constantFrom('', '+', '-'))
      .map(([whole, fraction, exponent, sign]) => `${'9'.repeat(whole)}${fraction > 0 ? `.${'5'.repeat(fraction)}` : ''}e${sign}${exponent}`)
    fc.assert(
      fc.property(number, (text) => {
        if (holdsNonFinite(JSON.parse(text))) expect(scanJsonText(`[${text}]`, 64)).toBe(TEXT_HUGE_NUMBER)
      }),
      { numRuns: 2000 },
    )
  })

  it('agrees with JSON.parse on depth and on numbers for any JSON text', () => {
    // Numbers written out by hand as well, so exponents and long digit runs occur.
    const number = fc.tuple(fc.integer({ min: -5, max: 5 }), fc.integer({ min: 0, max: 500 }), fc.boolean()).map(([mantissa, exponent, plus]) => `${mantissa}e${plus ? '+' : ''}${exponent}`)
    const texts = fc.oneof(
      fc.json({ depthSize: 'medium' }),
      fc.array(fc.oneof(number, fc.json()), { maxLength: 6 }).map((parts) => `[${parts.join(',')}]`),
    )
    fc.assert(
      fc.property(texts, fc.integer({ min: 1, max: 6 }), (text, maxDepth) => {
        const value: unknown = JSON.parse(text)
        const scanned = scanJsonText(text, maxDepth)
        expect(scanned === TEXT_TOO_DEEP).toBe(depthOf(value) > maxDepth)
        // Conservative the other way: a flag may walk a finite state, never miss an infinite one.
        if (scanned === TEXT_OK && holdsNonFinite(value)) throw new Error(`missed a non-finite number in ${text}`)
      }),
      { numRuns: 2000 },
    )
  })

  it('measures depth of parsed values without recursion', () => {
    let deep: unknown = 1
    for (let i = 0; i < 100_000; i++) deep = [deep]
    expect(valueExceedsDepth(deep, 64)).toBe(true)
    expect(valueExceedsDepth({ a: [1, { b: 2 }] }, 3)).toBe(false)
    expect(valueExceedsDepth({ a: [1, { b: [] }] }, 3)).toBe(true)
  })

  it('takes application/json with parameters, and nothing else', () => {
    expect(isJsonContentType('application/json')).toBe(true)
    expect(isJsonContentType('Application/JSON; charset=utf-8')).toBe(true)
    expect(isJsonContentType('application/json-patch+json')).toBe(false)
    expect(isJsonContentType('text/json')).toBe(false)
    expect(isJsonContentType(undefined)).toBe(false)
  })

  it('keeps __proto__ in a state as plain data', () => {
    const proposal = parseProposalText(
      `{"storeKey":"s","baseVersion":0,"epoch":"e1","clientId":"${newClientId()}","opId":1,"state":{"__proto__":{"polluted":true}}}`,
      8,
    )
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(Object.keys((proposal as SyncRequest).state as object)).toEqual(['__proto__'])
  })
})
