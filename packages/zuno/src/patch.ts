/**
 * Patches: a change to a JSON state as the paths it sets and removes, so what travels is
 * proportional to the change rather than to the state. Shared by the client (which makes patches
 * from the structural sharing of its updaters and applies the server's) and the server (which
 * applies proposals, merges disjoint ones and streams them). The format is described in
 * `docs/protocol.md#patches`.
 */

/**
 * One step of a path: an object's key, an array's index, or `{ [idKey]: id }`: the item of an
 * array whose `idKey` field is `id` (arrays declared with an id key in the store's `ids`).
 */
export type PathSegment = string | number | { readonly [idKey: string]: string | number }

/** Where in a state, as steps from its root; `[]` is the whole state. */
export type Path = readonly PathSegment[]

/**
 * One operation of a patch:
 * - `[path]` removes what is at `path` (an object's key, an array's item);
 * - `[path, value]` sets it: replaces, adds a key, or appends to an array (the index equal to its
 *   length, or an id no item has);
 * - `[path, value, after]` inserts an item into an id-keyed array right after the item whose id is
 *   `after` (`null`: first), or replaces the item that has its id already. If no item has the id
 *   `after` (a concurrent edit removed it), the item goes last.
 */
export type PatchOp = readonly [Path] | readonly [Path, unknown] | readonly [Path, unknown, string | number | null]

/** The operations that take a state from one version to the next, applied in order. */
export type Patch = readonly PatchOp[]

/**
 * Array paths whose items are objects identified by a key, for one store: `{ '/todos': 'id' }`.
 * A path is written like a JSON Pointer (`''` for the state itself, `/lists/*\/cards` with `*` for
 * any key or item). In such an array an edit addresses an item by its id, so editing one item and
 * editing another are disjoint, and an insert does not rewrite the list.
 */
export type IdPaths = Readonly<Record<string, string>>

/** The most operations one patch may have: past it, a change is sent (and streamed) whole. */
export const MAX_PATCH_OPS = 1000

/** The most array items one patch may look at to find its steps by id (a few milliseconds of work). */
const MAX_ITEMS_LOOKED_AT = 4_000_000

/** A patch that does not apply to the state it was given. */
export class PatchError extends Error {
  /** Always `PatchError`. */
  override name = 'PatchError'
}

type JsonObject = Record<string, unknown>

/** A JSON object: not null, not an array. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The one key and the id of an id segment. */
export function idOf(segment: PathSegment): [string, string | number] | undefined {
  if (typeof segment !== 'object') return undefined
  for (const key in segment) return [key, segment[key] as string | number]
  return undefined
}

/** The index of the item of `array` whose `key` is `id`, or -1. */
function findItem(array: readonly unknown[], key: string, id: unknown, fresh: Fresh): number {
  // Each step by id is a pass over its array: bounded per patch, so a hostile one cannot make a
  // thousand passes over a long list (an honest patch that needs more is sent as a state).
  fresh.looked += array.length
  if (fresh.looked > MAX_ITEMS_LOOKED_AT) throw new PatchError(`A patch may look at ${MAX_ITEMS_LOOKED_AT} items by id at most`)
  for (let i = 0; i < array.length; i++) {
    const item = array[i]
    if (isObject(item) && item[key] === id) return i
  }
  return -1
}

function setKey(object: JsonObject, key: string, value: unknown): void {
  // `__proto__` as an own key (JSON.parse makes it one) must stay one, not become the prototype.
  if (key === '__proto__') Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true })
  else object[key] = value
}

/**
 * Applies `patch` to `state` without changing it: what the patch touches is copied, everything else
 * is shared with `state` (structural sharing). Throws {@link PatchError} if a step does not exist or
 * is of the wrong kind. `copies.slots`, when given, grows by the array items and object keys copied:
 * about what the new version holds that the old one does not share; `copies.made`, when given,
 * receives each container copied (so a caller whose states are frozen can freeze just those).
 */
export function applyPatch(state: unknown, patch: Patch, copies?: { slots: number; made?: object[] }): unknown {
  // Containers copied by this call: changed in place by later operations, so a patch of many
  // operations on one array copies it once.
  const fresh: Fresh = { copies: new WeakSet<object>(), slots: 0, made: copies?.made, looked: 0 }
  let root = state
  for (const op of patch) root = applyOp(root, op, 0, fresh)
  if (copies !== undefined) copies.slots += fresh.slots
  return root
}

/** What one `applyPatch` copied so far. */
interface Fresh {
  copies: WeakSet<object>
  slots: number
  made: object[] | undefined
  /** Items looked at to find steps by id. */
  looked: number
}

function applyOp(node: unknown, op: PatchOp, depth: number, fresh: Fresh): unknown {
  const path = op[0]
  if (depth === path.length) {
    if (op.length === 1) throw mismatch(path, depth)
    return op[1]
  }
  const segment = path[depth] as PathSegment
  const last = depth === path.length - 1
  if (Array.isArray(node)) {
    const id = idOf(segment)
    let index: number
    if (id !== undefined) index = findItem(node, id[0], id[1], fresh)
    else if (typeof segment === 'number' && Number.isInteger(segment) && segment >= 0 && segment <= node.length) index = segment === node.length ? -1 : segment
    else throw mismatch(path, depth)
    // A spread, not `slice`: V8 slices a frozen array (every state on the server) on a slow path,
    // about 1 ms for 10,000 items against 10 µs.
    const copy = fresh.copies.has(node) ? node : copied([...node], fresh, node.length)
    if (!last || op.length === 1) {
      if (index < 0) throw mismatch(path, depth)
      if (last) copy.splice(index, 1)
      else copy[index] = applyOp(node[index], op, depth + 1, fresh)
      return copy
    }
    const value = op[1]
    if (index >= 0) copy[index] = value
    else if (op.length === 3 && id !== undefined) {
      const after = op[2]
      const anchor = after === null ? -1 : findItem(copy, id[0], after, fresh)
      // A missing anchor (removed meanwhile): the item goes last rather than nowhere.
      copy.splice(after === null ? 0 : anchor < 0 ? copy.length : anchor + 1, 0, value)
    } else copy.push(value)
    return copy
  }
  if (isObject(node)) {
    if (typeof segment !== 'string') throw mismatch(path, depth)
    const has = Object.hasOwn(node, segment)
    if (!has && (!last || op.length === 1)) throw mismatch(path, depth)
    const copy: JsonObject = fresh.copies.has(node) ? node : copied({ ...node }, fresh, Object.keys(node).length)
    if (last && op.length === 1) delete copy[segment]
    else setKey(copy, segment, last ? op[1] : applyOp(node[segment], op, depth + 1, fresh))
    return copy
  }
  throw mismatch(path, depth)
}

function copied<T extends object>(copy: T, fresh: Fresh, slots: number): T {
  fresh.copies.add(copy)
  fresh.slots += slots
  fresh.made?.push(copy)
  return copy
}

/** What a patch that does not apply throws: where its step found nothing of the kind it needs. */
function mismatch(path: Path, depth: number): PatchError {
  return new PatchError(`Nothing to change at ${JSON.stringify(path.slice(0, depth + 1))}`)
}

/** One declared id path, as steps (`*`: any). */
export interface IdPattern {
  /** The path's steps; `*` matches any. */
  readonly steps: readonly string[]
  /** The key that identifies the items of the array there. */
  readonly idKey: string
}

/** Compiles a store's {@link IdPaths} once. */
export function compileIdPaths(ids: IdPaths | undefined): readonly IdPattern[] {
  if (ids === undefined) return []
  return Object.entries(ids).map(([pointer, idKey]) => {
    if (pointer !== '' && !pointer.startsWith('/')) throw new TypeError(`The id path ${JSON.stringify(pointer)} must be '' or start with '/'`)
    return { steps: pointer === '' ? [] : pointer.slice(1).split('/'), idKey }
  })
}

/** The id key declared for the array at `path`, if any. */
export function idKeyAt(patterns: readonly IdPattern[], path: readonly PathSegment[]): string | undefined {
  for (const { steps, idKey } of patterns) {
    if (steps.length !== path.length) continue
    let matches = true
    for (let i = 0; i < steps.length && matches; i++) matches = steps[i] === '*' || steps[i] === path[i]
    if (matches) return idKey
  }
  return undefined
}

/**
 * The patch that takes `prev` to `next`: applied to `prev`, it gives a state deep-equal to `next`
 * (objects' key order aside). Parts `next` shares with `prev` (the same object, as an updater that
 * copies only what it changes leaves them) are skipped without a look, so a one-item edit of a
 * 10,000-item list costs a pass over the list's references, not a comparison of its items.
 * `undefined` when the patch would pass {@link MAX_PATCH_OPS} operations: send `next` whole.
 */
export function diff(prev: unknown, next: unknown, ids: readonly IdPattern[] = []): Patch | undefined {
  const ops: PatchOp[] = []
  return walk(prev, next, [], ops, ids) ? ops : undefined
}

/** Adds to `ops` what takes `a` to `b` at `path`; false once there are too many. */
function walk(a: unknown, b: unknown, path: PathSegment[], ops: PatchOp[], ids: readonly IdPattern[]): boolean {
  if (a === b) return true
  if (isObject(a) && isObject(b)) {
    // A key whose value is `undefined` is no key, as JSON has it (the whole state would drop it).
    for (const key in a) {
      if (has(a, key) && !has(b, key) && !push(ops, [[...path, key]])) return false
    }
    for (const key in b) {
      if (!has(b, key)) continue
      if (!has(a, key)) {
        if (!push(ops, [[...path, key], b[key]])) return false
        continue
      }
      path.push(key)
      const ok = walk(a[key], b[key], path, ops, ids)
      path.pop()
      if (!ok) return false
    }
    return true
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const idKey = idKeyAt(ids, path)
    if (idKey !== undefined) {
      const byId = walkById(a, b, idKey, path, ops, ids)
      if (byId !== undefined) return byId
    }
    return walkByIndex(a, b, path, ops, ids)
  }
  return push(ops, [[...path], b])
}

function has(object: JsonObject, key: string): boolean {
  return Object.hasOwn(object, key) && object[key] !== undefined
}

/** Arrays compared item by item: edits in place, then appends or removals at the end. */
function walkByIndex(a: readonly unknown[], b: readonly unknown[], path: PathSegment[], ops: PatchOp[], ids: readonly IdPattern[]): boolean {
  const common = Math.min(a.length, b.length)
  for (let i = 0; i < common; i++) {
    if (a[i] === b[i]) continue
    path.push(i)
    const ok = walk(a[i], b[i], path, ops, ids)
    path.pop()
    if (!ok) return false
  }
  for (let i = common; i < b.length; i++) if (!push(ops, [[...path, i], b[i]])) return false
  for (let i = a.length - 1; i >= common; i--) if (!push(ops, [[...path, i]])) return false
  return true
}

/**
 * Id-keyed arrays compared by id: removals, edits of the items kept, inserts after their
 * predecessor. `undefined` when the items are not all objects with distinct ids, or the kept items
 * changed order: then the array is compared by index.
 */
function walkById(a: readonly unknown[], b: readonly unknown[], idKey: string, path: PathSegment[], ops: PatchOp[], ids: readonly IdPattern[]): boolean | undefined {
  const before = indexById(a, idKey)
  const after = indexById(b, idKey)
  if (before === undefined || after === undefined) return undefined
  // The kept items must keep their order: a move is not an edit of one item.
  let lastIndex = -1
  for (const item of b as JsonObject[]) {
    const index = before.get(item[idKey] as string | number)
    if (index === undefined) continue
    if (index < lastIndex) return undefined
    lastIndex = index
  }
  for (const item of a as JsonObject[]) {
    const id = item[idKey] as string | number
    if (!after.has(id) && !push(ops, [[...path, { [idKey]: id }]])) return false
  }
  let previous: string | number | null = null
  for (const item of b as JsonObject[]) {
    const id = item[idKey] as string | number
    const index = before.get(id)
    if (index === undefined) {
      if (!push(ops, [[...path, { [idKey]: id }], item, previous])) return false
    } else if (a[index] !== item) {
      path.push({ [idKey]: id })
      const ok = walk(a[index], item, path, ops, ids)
      path.pop()
      if (!ok) return false
    }
    previous = id
  }
  return true
}

/** Each item's index by its id; `undefined` if an item is not an object with a string or number id, or two share one. */
function indexById(array: readonly unknown[], idKey: string): Map<string | number, number> | undefined {
  const index = new Map<string | number, number>()
  for (let i = 0; i < array.length; i++) {
    const item = array[i]
    if (!isObject(item)) return undefined
    const id = item[idKey]
    if ((typeof id !== 'string' && typeof id !== 'number') || index.has(id)) return undefined
    index.set(id, i)
  }
  return index
}

function push(ops: PatchOp[], op: PatchOp): boolean {
  if (ops.length >= MAX_PATCH_OPS) return false
  ops.push(op)
  return true
}

/**
 * Whether `value` takes more than `limit` characters as JSON, found by counting only until the
 * count passes `limit`: deciding that a small patch beats a 1 MB state costs a look at as much of
 * the state as the patch is long. Counts UTF-16 units, as `JSON.stringify(value).length` would,
 * give or take escapes and number spellings.
 */
export function jsonLongerThan(value: unknown, limit: number): boolean {
  let count = 0
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const current = stack.pop()
    if (typeof current === 'string') count += current.length + 2
    else if (typeof current === 'number') count += 8
    else if (typeof current === 'boolean' || current === null || current === undefined) count += 5
    else if (Array.isArray(current)) {
      count += 1 + current.length
      // Before its items are stacked: a 10,000-item list passes a patch's length on its commas alone.
      if (count > limit) return true
      for (let i = current.length - 1; i >= 0; i--) stack.push(current[i])
    } else {
      count += 1
      for (const key in current as JsonObject) {
        count += key.length + 4
        stack.push((current as JsonObject)[key])
        if (count > limit) return true
      }
    }
    if (count > limit) return true
  }
  return false
}
