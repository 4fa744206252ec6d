import { describe, expect, it } from 'vitest'
import { BoundedMap } from '../src/server/boundedMap'

describe('BoundedMap', () => {
  it('keeps the most recently added keys and forgets the oldest first', () => {
    const map = new BoundedMap<string, number>(3)
    for (const [i, key] of ['a', 'b', 'c', 'd', 'e'].entries()) map.set(key, i)
    expect([...map]).toEqual([
      ['c', 2],
      ['d', 3],
      ['e', 4],
    ])
    expect(map.get('a')).toBeUndefined()
    expect(map.size).toBe(3)
  })

  it('replaces a value in place, without moving the key up the line', () => {
    const map = new BoundedMap<string, number>(2)
    map.set('a', 1)
    map.set('b', 2)
    map.set('a', 10)
    map.set('c', 3)
    expect([...map]).toEqual([
      ['b', 2],
      ['c', 3],
    ])
  })

  it('stays bounded over many more writes than its capacity', () => {
    const map = new BoundedMap<number, number>(100)
    for (let i = 0; i < 100_000; i++) map.set(i, i)
    expect(map.size).toBe(100)
    expect(map.get(99_900)).toBe(99_900)
    expect(map.get(99_899)).toBeUndefined()
  })

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new BoundedMap(0)).toThrow(RangeError)
  })
})
