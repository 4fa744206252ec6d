import { ZunoError } from '../errors'
import { DEFAULT_LIMITS } from '../protocol'

/**
 * Checks that `value` is plain JSON and returns it: what the server stores must read back the same
 * from every storage and over the wire. `undefined`, functions, symbols, BigInts, non-finite
 * numbers, sparse arrays, class instances and cycles are refused with `invalid_state`.
 */
export function toJsonValue(value: unknown, storeKey: string, maxDepth: number = DEFAULT_LIMITS.maxDepth): unknown {
  const problem = findNonJson(value, maxDepth)
  if (problem !== undefined) {
    throw new ZunoError('invalid_state', `The state of ${JSON.stringify(storeKey)} is not JSON: ${problem}`)
  }
  return value
}

/** What in `root` is not plain JSON (in words), or `undefined` when it all is; see {@link toJsonValue}. */
export function findNonJson(root: unknown, maxDepth: number): string | undefined {
  const stack: Array<[unknown, string, number]> = [[root, 'the state', 0]]
  let visited = 0
  while (stack.length > 0) {
    const [value, where, depth] = stack.pop() as [unknown, string, number]
    switch (typeof value) {
      case 'string':
      case 'boolean':
        continue
      case 'number':
        if (!Number.isFinite(value)) return `${where} is ${value}`
        continue
      case 'object':
        break
      default:
        return `${where} is ${typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`}`
    }
    if (value === null) continue
    // A cycle shows up as depth without end.
    if (depth >= maxDepth) return `${where} nests deeper than ${maxDepth} levels (or refers to itself)`
    if (++visited > 10_000_000) return 'it is too large'
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        if (!(i in value)) return `${where}[${i}] is a hole`
        stack.push([value[i], `${where}[${i}]`, depth + 1])
      }
      continue
    }
    const prototype = Object.getPrototypeOf(value)
    if (prototype !== Object.prototype && prototype !== null) return `${where} is a ${value.constructor?.name ?? 'class instance'}`
    for (const key of Object.keys(value)) stack.push([(value as Record<string, unknown>)[key], `${where}.${key}`, depth + 1])
  }
  return undefined
}

/** Freezes `value` and everything in it, so no reader can change the server's truth through it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value
  const stack: object[] = [value]
  while (stack.length > 0) {
    const current = stack.pop() as Record<string, unknown>
    Object.freeze(current)
    // By index or for…in rather than Object.values: no array per object (states are plain JSON here).
    if (Array.isArray(current)) {
      for (let i = 0; i < current.length; i++) pushUnfrozen(stack, current[i])
    } else {
      for (const key in current) pushUnfrozen(stack, current[key])
    }
  }
  return value
}

function pushUnfrozen(stack: object[], child: unknown): void {
  if (typeof child === 'object' && child !== null && !Object.isFrozen(child)) stack.push(child)
}

/** Whether arrays and objects in a value nest deeper than `maxDepth` (as `scanJsonText` finds in text); iterative, so it cannot overflow. */
export function valueExceedsDepth(value: unknown, maxDepth: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [current, depth] = stack.pop() as [unknown, number]
    if (typeof current !== 'object' || current === null) continue
    if (depth + 1 > maxDepth) return true
    for (const child of Object.values(current)) stack.push([child, depth + 1])
  }
  return false
}
