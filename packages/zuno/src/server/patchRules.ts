/**
 * What the server asks of patches beyond applying them: whether a body's patch has the shape of one,
 * and whether two sets of patches touch a common part of a state (the test of a merge).
 */
import { valueExceedsDepth } from './json'
import { type IdPattern, idKeyAt, idOf, isObject, MAX_PATCH_OPS, type Patch, type Path, type PathSegment } from '../patch'

/** Why `value` is not a patch (its shape only, not whether it applies), or `undefined` if it is one. */
export function patchProblem(value: unknown, maxDepth: number): string | undefined {
  if (!Array.isArray(value)) return 'a patch is an array of operations'
  if (value.length > MAX_PATCH_OPS) return `a patch has at most ${MAX_PATCH_OPS} operations`
  for (let i = 0; i < value.length; i++) {
    const op: unknown = value[i]
    if (!Array.isArray(op) || op.length < 1 || op.length > 3) return `operation ${i} is not [path], [path, value] or [path, value, after]`
    const path: unknown = op[0]
    // A path no longer than a state may be deep: a step past it names nothing, and long paths would
    // make the merge test's work grow with their square.
    if (!Array.isArray(path) || path.length > maxDepth) return `operation ${i}: its path is not an array of at most ${maxDepth} steps`
    for (const segment of path) {
      if (!isSegment(segment)) return `operation ${i}: a step is not a key, an index or { idKey: id }`
    }
    // The state it builds must nest no deeper than a whole state may: repeated patches must not
    // stack levels until a snapshot cannot be encoded.
    if (op.length > 1 && (path.length >= maxDepth || valueExceedsDepth(op[1], maxDepth - 1 - path.length))) return `operation ${i} nests its value deeper than ${maxDepth} levels`
    if (op.length === 3) {
      const after: unknown = op[2]
      if (after !== null && typeof after !== 'string' && typeof after !== 'number') return `operation ${i}: "after" is not an id`
      if (path.length === 0 || idOf(path[path.length - 1] as PathSegment) === undefined) return `operation ${i}: only an item of an id-keyed array is inserted after another`
    }
  }
  return undefined
}

/**
 * Whether every step by id in `patch` names its array's items by the key the store declares for
 * that array: the merge test tells items apart by id alone, so an item named by another field
 * could be taken for another item.
 */
export function idStepsDeclared(patch: Patch, ids: readonly IdPattern[]): boolean {
  for (const [path] of patch) {
    for (let i = 0; i < path.length; i++) {
      const id = idOf(path[i] as PathSegment)
      if (id !== undefined && idKeyAt(ids, path.slice(0, i)) !== id[0]) return false
    }
  }
  return true
}

function isSegment(segment: unknown): boolean {
  if (typeof segment === 'string') return true
  if (typeof segment === 'number') return Number.isSafeInteger(segment) && segment >= 0
  if (!isObject(segment)) return false
  const keys = Object.keys(segment)
  const id = segment[keys[0] as string]
  return keys.length === 1 && (typeof id === 'string' || typeof id === 'number')
}

/**
 * Whether two lists of patches touch a common part of the state: some path of one is a path of
 * the other or inside it. A step into an array by index stands for the whole array (items shift),
 * while a step by id stands for that item alone. Costs one pass over each list.
 */
export function patchesOverlap(theirs: readonly Patch[], ours: Patch): boolean {
  // Every path they touched, and every path above one.
  const touched = new Set<string>()
  const above = new Set<string>()
  for (const patch of theirs) {
    for (const [path] of patch) {
      const keys = pathKeys(path)
      touched.add(keys[keys.length - 1] as string)
      for (let i = 0; i < keys.length - 1; i++) above.add(keys[i] as string)
    }
  }
  for (const [path] of ours) {
    const keys = pathKeys(path)
    const full = keys[keys.length - 1] as string
    // Ours is inside something they touched, or something they touched is inside ours.
    if (above.has(full) || touched.has(full)) return true
    for (let i = 0; i < keys.length - 1; i++) if (touched.has(keys[i] as string)) return true
  }
  return false
}

/**
 * Whether two operations of one patch touch a common part of the state (a value set, then set
 * again or removed): the patch then says more than the change it makes, and is made again from it.
 */
export function overlapsItself(patch: Patch): boolean {
  const touched = new Set<string>()
  const above = new Set<string>()
  for (const [path] of patch) {
    const keys = pathKeys(path)
    const full = keys[keys.length - 1] as string
    if (above.has(full) || touched.has(full)) return true
    for (let i = 0; i < keys.length - 1; i++) {
      if (touched.has(keys[i] as string)) return true
      above.add(keys[i] as string)
    }
    touched.add(full)
  }
  return false
}

/** The keys of a path and of every path above it, root first, cut at the first step by index. */
function pathKeys(path: Path): string[] {
  const keys = ['']
  let key = ''
  for (const segment of path) {
    if (typeof segment === 'number') break
    const id = idOf(segment)
    // An id step names the item by its id alone: two id keys for one array would not tell items apart.
    key += id === undefined ? `/${JSON.stringify(segment)}` : `/#${JSON.stringify(id[1])}`
    keys.push(key)
  }
  return keys
}
