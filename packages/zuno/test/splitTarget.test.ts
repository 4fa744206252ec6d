import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { splitTarget } from '../src/server/index'

/** What the URL parser makes of a request target: the behaviour the fast path must keep. */
function parsed(target: string): { path: string; query: string } {
  try {
    const url = new URL(target, 'http://zuno.invalid')
    return { path: url.pathname, query: url.searchParams.toString() }
  } catch {
    return { path: '', query: '' }
  }
}

describe('splitTarget', () => {
  it('splits plain targets without a URL parser, as the parser would', () => {
    expect(splitTarget('/sync')).toMatchObject({ path: '/sync' })
    expect(splitTarget('/sse?stores=a,b&lastEventId=x-1').query.get('stores')).toBe('a,b')
  })

  it('agrees with the URL parser on any target, dots, escapes and fragments included', () => {
    const piece = fc.constantFrom('/', 'sync', 'sse', '?', '#', '&', '=', '%2e', '%', '.', '..', 'a', 'Z9', '-', '_', ' ', '+', '\\\\', 'é')
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const target = `/${pieces.join('')}`
        const { path, query } = splitTarget(target)
        expect({ path, query: query.toString() }).toEqual(parsed(target))
      }),
      { numRuns: 2000 },
    )
  })
})
