/**
 * Properties of patches (issue #16), on random JSON states and random edits:
 * - a diff applied to the state it was taken from gives exactly the new state, whether the edit
 *   shared structure (as an app's updater does) or built everything afresh;
 * - applying a patch never changes its input;
 * - patches that do not overlap merge: the server's edits then the proposal's, both intents kept,
 *   and (without insert anchors) in either order; edits of one item, key or array without ids overlap;
 * - over real HTTP, a store that merges accepts two disjoint proposals on one base and answers 409
 *   to overlapping ones with what rebuilds its current state.
 */
import { createServer, type Server } from 'node:http'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineZuno, type Patch, type Path } from '../src/index'
import { applyPatch, compileIdPaths, diff, type IdPattern, idOf, isObject, jsonLongerThan, MAX_PATCH_OPS, PatchError } from '../src/patch'
import { createNodeHandler, createUniverse } from '../src/server/index'
import { overlapsItself, patchesOverlap } from '../src/server/patchRules'
import { newClientId } from '../src/id'

type Json = null | boolean | number | string | Json[] | JsonObject
interface JsonObject {
  [key: string]: Json
}

const SEED = 20261127

// ---------------------------------------------------------------------------------------------
// Random states: objects (with `__proto__`, '' and '0' among their keys), arrays without ids, and
// lists under `items` whose objects have distinct ids (or, now and then, duplicates and non-objects).

/** Sets an own key, `__proto__` included (plain assignment would set the prototype). */
function setKey(object: JsonObject, key: string, value: Json): void {
  Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true })
}

function objectOf(entries: ReadonlyArray<readonly [string, Json]>): JsonObject {
  const object: JsonObject = {}
  for (const [key, value] of entries) setKey(object, key, value)
  return object
}

const key = fc.constantFrom('a', 'b', 'c', 'id', 'title', 'items', '__proto__', '', '0', 'constructor')
const idArb = fc.oneof(fc.constantFrom('x', 'y', 'z', 'w'), fc.integer({ min: 0, max: 6 }), fc.string({ maxLength: 2 }))
const leaf: fc.Arbitrary<Json> = fc.oneof(fc.constant(null), fc.boolean(), fc.integer({ min: -3, max: 3 }), fc.constantFrom('', 'a', 'b'), fc.string({ maxLength: 3 }))

function itemOf(inner: fc.Arbitrary<Json>): fc.Arbitrary<JsonObject> {
  return fc.tuple(idArb, fc.array(fc.tuple(key, inner), { maxLength: 3 })).map(([id, entries]) => objectOf([...entries, ['id', id]]))
}

/** A list meant to be id-keyed: distinct ids mostly; sometimes a duplicate id or a non-object. */
function listOf(inner: fc.Arbitrary<Json>, minLength = 0): fc.Arbitrary<Json[]> {
  const clean = fc.uniqueArray(itemOf(inner), { selector: (item) => item.id, minLength, maxLength: 5 })
  const dirty = fc.tuple(clean, fc.nat(), fc.oneof(leaf, fc.array(leaf, { maxLength: 2 }))).map(([items, at, stranger]): Json[] => {
    const copy: Json[] = [...items]
    // A duplicate of an item's id (a shallow copy), or a value that is not an item at all.
    const twin = items.length > 0 && at % 2 === 0 ? { ...(items[at % items.length] as JsonObject) } : stranger
    copy.splice(at % (copy.length + 1), 0, twin)
    return copy
  })
  return fc.oneof({ weight: 5, arbitrary: clean }, { weight: 1, arbitrary: dirty })
}

/** An object whose keys hold `inner` values, sometimes with a list under `items`. */
function objectWith(inner: fc.Arbitrary<Json>): fc.Arbitrary<JsonObject> {
  return fc
    .tuple(fc.array(fc.tuple(key, inner), { maxLength: 4 }), fc.option(listOf(inner), { nil: undefined }))
    .map(([entries, items]) => objectOf(items === undefined ? entries : [...entries, ['items', items]]))
}

function jsonOf(depth: number): fc.Arbitrary<Json> {
  if (depth === 0) return leaf
  const inner = jsonOf(depth - 1)
  return fc.oneof(
    { weight: 3, arbitrary: leaf },
    { weight: 3, arbitrary: objectWith(inner) },
    { weight: 1, arbitrary: fc.array(inner, { maxLength: 4 }) },
    { weight: 1, arbitrary: listOf(inner) },
  )
}

/** A state: mostly a container (a leaf state has only its replacement to test). */
const state: fc.Arbitrary<Json> = fc.oneof(
  { weight: 5, arbitrary: objectWith(jsonOf(3)) },
  { weight: 2, arbitrary: listOf(jsonOf(2)) },
  { weight: 2, arbitrary: fc.array(jsonOf(2), { maxLength: 5 }) },
  { weight: 1, arbitrary: leaf },
)

/** Whether a list that `declared` makes id-keyed holds a duplicate id or a non-object: diffs fall back to indexes there. */
function hasStrayItems(value: Json, atItems = true): boolean {
  if (Array.isArray(value)) {
    if (atItems) {
      const seenIds = new Set<unknown>()
      for (const each of value) {
        if (!isObject(each) || seenIds.has(each.id)) return true
        seenIds.add(each.id)
      }
    }
    return value.some((each) => hasStrayItems(each, false))
  }
  return isObject(value) && Object.keys(value).some((k) => hasStrayItems(value[k] as Json, k === 'items'))
}

/** Lists under `items` at any of the first depths, and the root itself, are id-keyed. */
const declared = compileIdPaths({ '': 'id', '/items': 'id', '/*/items': 'id', '/*/*/items': 'id', '/*/*/*/items': 'id' })

// ---------------------------------------------------------------------------------------------
// Random edits, made as an app's updater makes them: copy the path to what changes, share the rest.

/** One edit: `picks` choose the way down (an index or key at each level), `action` what to do there. */
interface Edit {
  picks: number[]
  action: number
  value: Json
  item: JsonObject
  key: string
  at: number
  to: number
  /** A key of the root to start from (for edits aimed at one list). */
  into?: string
}

const edit: fc.Arbitrary<Edit> = fc.record({
  picks: fc.array(fc.nat({ max: 30 }), { maxLength: 5 }),
  action: fc.nat({ max: 1000 }),
  value: jsonOf(2),
  item: itemOf(jsonOf(1)),
  key,
  at: fc.nat({ max: 30 }),
  to: fc.nat({ max: 30 }),
})

const arrayActions = ['append', 'insert', 'removeMiddle', 'truncate', 'reverse', 'move', 'duplicate', 'replace', 'clear'] as const
const objectActions = ['setExisting', 'setKey', 'delete', 'replace', 'clear'] as const

/** What kinds of edit the runs made, so a property can say it saw each one. */
type Seen = Map<string, number>
const note = (seen: Seen | undefined, what: string) => seen?.set(what, (seen.get(what) ?? 0) + 1)

/** `node` edited by `change`, copying only the path to what changes. */
function edited(node: Json, change: Edit, seen?: Seen, depth = 0): Json {
  const { into } = change
  if (into !== undefined && isObject(node) && Object.hasOwn(node, into)) {
    const copy = { ...node }
    const { into: _, ...rest } = change
    setKey(copy, into, edited(node[into] as Json, rest, seen))
    return copy
  }
  const pick = change.picks[depth]
  if (pick !== undefined) {
    if (Array.isArray(node) && node.length > 0) {
      const copy = node.slice()
      const i = pick % node.length
      copy[i] = edited(node[i] as Json, change, seen, depth + 1)
      return copy
    }
    if (isObject(node)) {
      const keys = Object.keys(node)
      if (keys.length > 0) {
        const chosen = keys[pick % keys.length] as string
        const copy = { ...node }
        setKey(copy, chosen, edited(node[chosen] as Json, change, seen, depth + 1))
        return copy
      }
    }
  }
  return acted(node, change, depth, seen)
}

function acted(node: Json, change: Edit, depth: number, seen?: Seen): Json {
  const { action, value, item, at, to } = change
  if (Array.isArray(node)) {
    const holdsItems = node.some((each) => isObject(each) && Object.hasOwn(each, 'id'))
    const kind = holdsItems ? 'items' : 'array'
    const fresh = holdsItems ? item : value
    const n = node.length
    let what: string = arrayActions[action % arrayActions.length] as string
    if (n === 0 && what !== 'replace') what = 'append'
    note(seen, `${kind}.${what}`)
    switch (what) {
      case 'append':
        return [...node, fresh]
      case 'insert': {
        const copy = node.slice()
        copy.splice(at % (n + 1), 0, fresh)
        return copy
      }
      case 'removeMiddle':
        return node.filter((_, i) => i !== at % n)
      case 'truncate':
        return node.slice(0, at % n)
      case 'reverse':
        return node.slice().reverse()
      case 'move': {
        const copy = node.slice()
        const [moved] = copy.splice(at % n, 1)
        copy.splice(to % n, 0, moved as Json)
        return copy
      }
      case 'duplicate':
        return [...node, node[at % n] as Json]
      case 'clear':
        return []
      default:
        note(seen, depth === 0 ? 'root.replace' : 'replace')
        return value
    }
  }
  if (isObject(node)) {
    const keys = Object.keys(node)
    let what: string = objectActions[action % objectActions.length] as string
    if (keys.length === 0 && (what === 'setExisting' || what === 'delete')) what = 'setKey'
    note(seen, `object.${what}`)
    const copy = { ...node }
    switch (what) {
      case 'setExisting':
        setKey(copy, keys[at % keys.length] as string, value)
        return copy
      case 'setKey':
        if (change.key === '__proto__') note(seen, 'object.set __proto__')
        setKey(copy, change.key, value)
        return copy
      case 'delete': {
        const gone = keys[at % keys.length] as string
        if (gone === '__proto__') note(seen, 'object.delete __proto__')
        delete copy[gone]
        return copy
      }
      case 'clear':
        return {}
      default:
        note(seen, depth === 0 ? 'root.replace' : 'replace')
        return value
    }
  }
  note(seen, depth === 0 ? 'root.replace' : 'replace')
  return value
}

function editedBy(base: Json, changes: readonly Edit[], seen?: Seen): Json {
  return changes.reduce((node, change) => edited(node, change, seen), base)
}

/** The same value built afresh: no part shared with anything (what an updater that rebuilds makes). */
function rebuilt(value: Json): Json {
  if (Array.isArray(value)) return value.map(rebuilt)
  if (isObject(value)) return objectOf(Object.keys(value).map((k) => [k, rebuilt(value[k] as Json)]))
  return value
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const k of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[k])
  }
  return value
}

const MISSING = Symbol('missing')

/** What is at `path` in `state` (an id step finds the first item with that id), or MISSING. */
function valueAt(state: unknown, path: Path): unknown {
  let node = state
  for (const step of path) {
    const id = idOf(step)
    if (Array.isArray(node)) {
      if (id !== undefined) node = node.find((each) => isObject(each) && each[id[0]] === id[1]) ?? MISSING
      else if (typeof step === 'number' && step < node.length) node = node[step]
      else return MISSING
    } else if (isObject(node) && typeof step === 'string' && Object.hasOwn(node, step)) node = node[step]
    else return MISSING
    if (node === MISSING) return MISSING
  }
  return node
}

const hasIdStep = (patch: Patch) => patch.some(([path]) => path.some((step) => typeof step === 'object'))
const hasInsert = (patch: Patch) => patch.some((op) => op.length === 3)

// ---------------------------------------------------------------------------------------------

describe('diff then applyPatch', () => {
  it('gives exactly the edited state, shared or rebuilt, with ids declared or not, never changing its input', () => {
    const seen: Seen = new Map()
    let runs = 0
    let tooLong = 0
    fc.assert(
      fc.property(state, fc.array(edit, { minLength: 1, maxLength: 4 }), fc.boolean(), (prev, changes, withIds) => {
        runs++
        const ids: readonly IdPattern[] = withIds ? declared : []
        deepFreeze(prev)
        const next = editedBy(prev, changes, seen)
        for (const target of [next, rebuilt(next)]) {
          const patch = diff(prev, target, ids)
          if (patch === undefined) {
            tooLong++
            continue
          }
          if (withIds && hasIdStep(patch)) note(seen, 'patch with id steps')
          if (withIds && (hasStrayItems(prev) || hasStrayItems(target))) note(seen, 'id-keyed list with stray items')
          if (hasInsert(patch)) note(seen, 'patch with inserts')
          if (patch.some(([path]) => path.includes('__proto__'))) note(seen, 'patch through __proto__')
          if (patch.some(([path]) => path.length === 0)) note(seen, 'patch of the root')
          deepFreeze(patch)
          expect(applyPatch(prev, patch)).toEqual(target)
          // What travels is JSON: the patch means the same after a round trip.
          expect(applyPatch(prev, JSON.parse(JSON.stringify(patch)) as Patch)).toEqual(target)
        }
      }),
      { numRuns: 1500, seed: SEED },
    )
    // The property saw every kind of edit, not only the easy ones.
    for (const kind of ['items', 'array'])
      for (const what of arrayActions.filter((a) => a !== 'replace')) expect(seen.get(`${kind}.${what}`), `${kind}.${what}`).toBeGreaterThan(5)
    for (const what of objectActions) expect(seen.get(`object.${what}`), `object.${what}`).toBeGreaterThan(5)
    for (const what of ['root.replace', 'id-keyed list with stray items', 'object.set __proto__', 'object.delete __proto__', 'patch with id steps', 'patch with inserts', 'patch through __proto__', 'patch of the root'])
      expect(seen.get(what), what).toBeGreaterThan(5)
    // Falling back to a whole state is allowed, and rare.
    expect(tooLong).toBeLessThan(runs / 100)
  })

  it('removes a key of an item inside an array, not the item', () => {
    // Found by the property above: a removal whose path went on past an array step removed the item.
    expect(applyPatch([{ id: 'x', done: true }], diff([{ id: 'x', done: true }], [{ id: 'x' }]) as Patch)).toEqual([{ id: 'x' }])
    const ids = compileIdPaths({ '/todos': 'id' })
    const prev = { todos: [{ id: 'x', done: true }, { id: 'y' }] }
    const patch = diff(prev, { todos: [{ id: 'x' }, { id: 'y' }] }, ids) as Patch
    expect(patch).toEqual([[['todos', { id: 'x' }, 'done']]])
    expect(applyPatch(prev, patch)).toEqual({ todos: [{ id: 'x' }, { id: 'y' }] })
  })

  it('gives up past MAX_PATCH_OPS operations', () => {
    const prev = Object.fromEntries(Array.from({ length: MAX_PATCH_OPS + 1 }, (_, i) => [`k${i}`, i]))
    const next = Object.fromEntries(Array.from({ length: MAX_PATCH_OPS + 1 }, (_, i) => [`k${i}`, -i - 1]))
    expect(diff(prev, next)).toBeUndefined()
    expect(diff(prev, { ...prev, k0: 'changed' })).toEqual([[['k0'], 'changed']])
  })

  it('applied to a state it was not made for, throws PatchError or applies, and changes neither', () => {
    let mismatches = 0
    fc.assert(
      fc.property(state, fc.array(edit, { minLength: 1, maxLength: 3 }), state, fc.boolean(), (prev, changes, other, withIds) => {
        const patch = diff(prev, editedBy(prev, changes), withIds ? declared : [])
        fc.pre(patch !== undefined)
        const before = JSON.stringify(other)
        deepFreeze(other)
        deepFreeze(patch)
        try {
          applyPatch(other, patch)
        } catch (error) {
          // A write into the frozen input would be a TypeError here.
          expect(error).toBeInstanceOf(PatchError)
          mismatches++
        }
        expect(JSON.stringify(other)).toBe(before)
      }),
      { numRuns: 1000, seed: SEED },
    )
    expect(mismatches).toBeGreaterThan(100)
  })
})

// ---------------------------------------------------------------------------------------------
// Merges. The base always has an id-keyed list `items` (at least one item) and an array without
// ids `tags` (at least one element), around random keys.

const mergeIds = compileIdPaths({ '/items': 'id', '/*/items': 'id', '/items/*/items': 'id' })

const base: fc.Arbitrary<JsonObject> = fc
  .tuple(fc.array(fc.tuple(key, jsonOf(3)), { maxLength: 4 }), listOf(jsonOf(2), 1), fc.array(leaf, { minLength: 1, maxLength: 4 }))
  .map(([entries, items, tags]) => objectOf([...entries, ['items', items], ['tags', tags]]))

/** Successive edits, each a patch on the state the one before made: what the server committed. */
function successive(start: Json, editsPerPatch: readonly (readonly Edit[])[]): { patches: Patch[]; end: Json } | undefined {
  const patches: Patch[] = []
  let end = start
  for (const changes of editsPerPatch) {
    const next = editedBy(end, changes)
    const patch = diff(end, next, mergeIds)
    if (patch === undefined) return undefined
    patches.push(patch)
    end = next
  }
  return { patches, end }
}

/** Edits anywhere, and edits in or of the list `items` (where edits of two items merge). */
const mergeEdit: fc.Arbitrary<Edit> = fc.oneof(edit, edit.map((change) => ({ ...change, into: 'items' })))

const applyAll = (start: unknown, patches: readonly Patch[]) => patches.reduce((state, patch) => applyPatch(state, patch), start)

describe('patchesOverlap and merges', () => {
  it('disjoint edits merge: B applies after A, equals A then B, keeps both intents, and commutes without inserts', () => {
    let disjoint = 0
    let commuted = 0
    let byIds = 0
    let runs = 0
    fc.assert(
      fc.property(
        base,
        fc.array(fc.array(mergeEdit, { minLength: 1, maxLength: 2 }), { minLength: 1, maxLength: 3 }),
        fc.array(mergeEdit, { minLength: 1, maxLength: 2 }),
        (start, serverEdits, proposalEdits) => {
          runs++
          deepFreeze(start)
          const server = successive(start, serverEdits)
          const proposal = successive(start, [proposalEdits])
          if (server === undefined || proposal === undefined) return
          const [ours] = proposal.patches as [Patch]
          const overlap = patchesOverlap(server.patches, ours)
          // Overlap is symmetric: whose edit came first does not change whether they meet.
          expect(patchesOverlap([ours], server.patches.flat())).toBe(overlap)
          if (overlap) return
          disjoint++
          if (hasIdStep(ours) && server.patches.some(hasIdStep)) byIds++
          // (a) applies, and is the server's edits followed by the proposal's.
          const merged = applyPatch(server.end, ours)
          expect(merged).toEqual(applyPatch(applyAll(start, server.patches), ours))
          // (b) every path the proposal set has its value; every path the server set keeps the server's.
          for (const [path] of ours) expect(valueAt(merged, path)).toEqual(valueAt(proposal.end, path))
          for (const patch of server.patches) for (const [path] of patch) expect(valueAt(merged, path)).toEqual(valueAt(server.end, path))
          // (c) with no insert anchors, the other order gives the same state.
          if (!hasInsert(ours) && !server.patches.some(hasInsert)) {
            commuted++
            expect(applyAll(proposal.end, server.patches)).toEqual(merged)
          }
        },
      ),
      { numRuns: 1500, seed: SEED },
    )
    // Not vacuous: many pairs were disjoint, many of those were checked both ways, and some were edits of
    // one id-keyed list on both sides.
    expect(disjoint).toBeGreaterThan(runs / 5)
    expect(commuted).toBeGreaterThan(runs / 10)
    expect(byIds).toBeGreaterThan(runs / 30)
  })

  /** Two edits of the same part of `start`, one for each side. */
  const overlapping = fc.record({
    kind: fc.constantFrom('same item field', 'same key', 'item edit and its removal', 'same array without ids', 'root replacement'),
    at: fc.nat({ max: 30 }),
    field: fc.constantFrom('title', 'done', 'a', 'id', '__proto__'),
    key,
    arrayEdits: fc.tuple(fc.nat({ max: 3 }), fc.nat({ max: 3 }), fc.nat({ max: 30 }), fc.nat({ max: 30 })),
    other: fc.array(edit, { minLength: 1, maxLength: 2 }),
    swap: fc.boolean(),
  })

  /** `tags` edited in place, appended to, truncated or cut in the middle; `mark` makes each side's value its own. */
  function arrayEdit(tags: readonly Json[], how: number, at: number, mark: string): Json[] {
    const n = tags.length
    if (how === 0) return tags.map((tag, i) => (i === at % n ? mark : tag))
    if (how === 1) return [...tags, mark]
    if (how === 2) return tags.slice(0, at % n)
    return tags.filter((_, i) => i !== at % n)
  }

  it('edits of one item field, one key, an item and its removal, one array without ids, or the root overlap', () => {
    const kinds = new Map<string, number>()
    fc.assert(
      fc.property(base, overlapping, fc.array(fc.array(edit, { minLength: 1, maxLength: 2 }), { maxLength: 2 }), (start, pair, later) => {
        deepFreeze(start)
        const items = start.items as JsonObject[]
        const item = items[pair.at % items.length] as JsonObject
        const withItem = (change: (item: JsonObject) => JsonObject | undefined): JsonObject => ({
          ...start,
          items: items.flatMap((each) => (each === item ? (change(each) ?? []) : [each])),
        })
        const setField = (mark: string) => withItem((each) => objectOf([...Object.entries(each), [pair.field, mark]]))
        let one: Json
        let two: Json
        switch (pair.kind) {
          case 'same item field':
            ;[one, two] = [setField('A!'), setField('B!')]
            break
          case 'same key':
            ;[one, two] = [objectOf([...Object.entries(start), [pair.key, 'A!']]), objectOf([...Object.entries(start), [pair.key, { B: true }]])]
            break
          case 'item edit and its removal':
            ;[one, two] = [setField('A!'), withItem(() => undefined)]
            break
          case 'same array without ids': {
            const [howA, howB, atA, atB] = pair.arrayEdits
            const tags = start.tags as Json[]
            ;[one, two] = [{ ...start, tags: arrayEdit(tags, howA, atA, 'A!') }, { ...start, tags: arrayEdit(tags, howB, atB, 'B!') }]
            break
          }
          default:
            // Not an object: an object would be diffed key by key, not replaced.
            ;[one, two] = [['replaced'], editedBy(start, pair.other)]
        }
        if (pair.swap) [one, two] = [two, one]
        const first = diff(start, one, mergeIds)
        const ours = diff(start, two, mergeIds)
        fc.pre(first !== undefined && ours !== undefined && first.length > 0 && ours.length > 0)
        // The server may have committed more after the overlapping edit.
        const more = successive(one, later)
        fc.pre(more !== undefined)
        const theirs = [first, ...more.patches]
        kinds.set(pair.kind, (kinds.get(pair.kind) ?? 0) + 1)
        expect(patchesOverlap(theirs, ours)).toBe(true)
        expect(patchesOverlap([ours], theirs.flat())).toBe(true)
      }),
      { numRuns: 1000, seed: SEED },
    )
    for (const count of kinds.values()) expect(count).toBeGreaterThan(100)
    expect(kinds.size).toBe(5)
  })
})

// ---------------------------------------------------------------------------------------------
// The same over HTTP: a store that merges, two proposals on one base.

describe('a server that merges', () => {
  const app = defineZuno({ stores: { doc: { initial: {} as Json, ids: { '/items': 'id', '/*/items': 'id', '/items/*/items': 'id' }, merge: true } } })
  let close: () => Promise<void>
  let url: string
  let universe: ReturnType<typeof createUniverse>

  beforeAll(async () => {
    universe = createUniverse({ app })
    await universe.ready
    // Every request of the property comes from one address: lift the per-principal rate limit.
    const handler = createNodeHandler(universe, { maxProposalsPerSecond: 1_000_000 })
    const server: Server = createServer(handler)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/zuno/sync`
    close = async () => {
      handler.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await universe.close()
    }
  })
  afterAll(() => close())

  // A fresh client per run: a 409 leaves its op's id free, so one client's ids would skip.
  let client = { clientId: newClientId(), opId: 0 }
  async function post(body: Record<string, unknown>) {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ storeKey: 'doc', epoch: universe.epoch, clientId: client.clientId, opId: ++client.opId, ...body }),
    })
    return { status: response.status, body: (await response.json()) as { version: number; error?: string; state?: unknown; patches?: Patch[] } }
  }

  it('accepts disjoint proposals on one base as their sequence, and answers 409 to overlapping ones with what rebuilds its state', async () => {
    const outcomes = { merged: 0, refused: 0 }
    await fc.assert(
      fc.asyncProperty(
        base,
        fc.array(fc.array(mergeEdit, { minLength: 1, maxLength: 2 }), { minLength: 1, maxLength: 2 }),
        fc.array(mergeEdit, { minLength: 1, maxLength: 2 }),
        async (start, serverEdits, proposalEdits) => {
          const server = successive(start, serverEdits)
          const proposal = successive(start, [proposalEdits])
          fc.pre(server !== undefined && proposal !== undefined)
          const [ours] = proposal.patches as [Patch]
          fc.pre(ours.length > 0 && server.patches.every((patch) => patch.length > 0))
          client = { clientId: newClientId(), opId: 0 }
          const reset = await post({ baseVersion: universe.store('doc').version, state: start })
          expect(reset.body, JSON.stringify(reset.body)).toMatchObject({ ok: true })
          const baseVersion = reset.body.version
          for (const [i, patch] of server.patches.entries()) expect((await post({ baseVersion: baseVersion + i, patch })).status).toBe(200)
          const answer = await post({ baseVersion, patch: ours })
          const current = universe.store('doc').get()
          // Whatever the answer, its patches since the base (or its state) say the server's state.
          const said = answer.body.patches !== undefined ? applyAll(start, answer.body.patches) : answer.body.state
          expect(said).toEqual(current)
          // The server keeps a patch as sent only when it says no more than its change and is shorter
          // than the state it made; otherwise it keeps a patch made again, or none (then nothing merges).
          let made: unknown = start
          const keptAsSent = server.patches.every((patch) => {
            made = applyPatch(made, patch)
            return !overlapsItself(patch) && jsonLongerThan(made, JSON.stringify(patch).length)
          })
          if (!keptAsSent) {
            expect([200, 409]).toContain(answer.status)
            expect(current).toEqual(answer.status === 200 ? applyPatch(server.end, ours) : server.end)
          } else if (!patchesOverlap(server.patches, ours)) {
            outcomes.merged++
            expect(answer.status).toBe(200)
            expect(current).toEqual(applyPatch(server.end, ours))
          } else {
            outcomes.refused++
            expect([answer.status, answer.body.error]).toEqual([409, 'conflict'])
            expect(current).toEqual(server.end)
          }
        },
      ),
      { numRuns: 150, seed: SEED },
    )
    expect(outcomes.merged).toBeGreaterThan(5)
    expect(outcomes.refused).toBeGreaterThan(5)
  })
})
