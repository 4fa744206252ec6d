import { newClientId } from '../src/id'
import { describe, expect, it } from 'vitest'
import { isJsonContentType, parseProposalText } from '../src/server/index'
import { textExceedsDepth, valueExceedsDepth } from '../src/server/validate'

describe('request validation', () => {
  it('measures depth in text, ignoring brackets inside strings', () => {
    expect(textExceedsDepth('[[[]]]', 3)).toBe(false)
    expect(textExceedsDepth('[[[[]]]]', 3)).toBe(true)
    expect(textExceedsDepth('{"a":"[[[[[[[[\\"[[["}', 1)).toBe(false)
    expect(textExceedsDepth('[' .repeat(1_000_000), 64)).toBe(true)
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
    expect(Object.keys(proposal.state as object)).toEqual(['__proto__'])
  })
})
