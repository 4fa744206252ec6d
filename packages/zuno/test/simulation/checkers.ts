import { writerTag } from '../../src/writerTag'
import { applyPatch } from '../../src/patch'
import type { CommittedEvent } from '../../src/server/index'
import type { Attempt } from './simNetwork'

/** An op as its caller saw it: what `set` (or `act`) settled with. */
export interface OpRecord {
  /** Which replica issued it. */
  replica: string
  /** The store a `set` wrote; for an action, the first store it writes. */
  storeKey: string
  /** For an action: its name (an action resolves with no version). */
  action?: string
  outcome: 'pending' | 'resolved' | 'rejected'
  version?: number
  error?: string
  /** The code of the error's cause: what refused the retry of an op rejected as `outcome_unknown`. */
  cause?: string
  /** For a `set` of the merging `items` store: the edit its updater made. */
  edit?: ItemEdit
  /** For a `set`: the version its replica showed of the store when `set` was called, and in which epoch. */
  madeOn?: { version: number; epoch: string }
}

/**
 * One edit of an id-keyed list of items: flip one's `done`, retitle one, insert a new one after
 * another (first for `null`, last when that one is gone), remove one. An edit of an item that is
 * gone changes nothing.
 */
export type ItemEdit =
  | { kind: 'toggle'; id: string }
  | { kind: 'rename'; id: string; title: string }
  | { kind: 'insert'; id: string; after: string | null }
  | { kind: 'remove'; id: string }

interface ItemLike {
  id: string
  done?: boolean
}

/**
 * What `edit` makes of `list`, copying only what it changes (the structural sharing a patch is made
 * from): the replicas' updater, and what the checker expects of every version an edit made.
 */
export function applyItemEdit(list: readonly unknown[], edit: ItemEdit): unknown[] {
  const items = list as readonly ItemLike[]
  switch (edit.kind) {
    case 'toggle':
      return items.map((item) => (item.id === edit.id ? { ...item, done: !item.done } : item))
    case 'rename':
      return items.map((item) => (item.id === edit.id ? { ...item, title: edit.title } : item))
    case 'insert': {
      const anchor = edit.after === null ? -1 : items.findIndex((item) => item.id === edit.after)
      const at = edit.after === null ? 0 : anchor < 0 ? items.length : anchor + 1
      return [...items.slice(0, at), { id: edit.id, title: edit.id, done: false }, ...items.slice(at)]
    }
    case 'remove':
      return items.filter((item) => item.id !== edit.id)
  }
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)

/**
 * The log as one entry per store changed: a commit of several stores (an action's) becomes one
 * entry per store, each with the commit's seq, id, writer and opId.
 */
export function perStore(committed: readonly CommittedEvent[]): CommittedEvent[] {
  return committed.flatMap((event) =>
    event.changes === undefined
      ? [event]
      : event.changes.map(({ storeKey, version, state, deleted }) => ({
          storeKey,
          version,
          state,
          writer: event.writer,
          opId: event.opId,
          seq: event.seq,
          id: event.id,
          ...(deleted ? { deleted } : {}),
        })),
  )
}

/** What a store holds after `event`: its state, or the store's initial state when the event deleted it. */
export function stateAt(event: CommittedEvent | undefined, initial: unknown): unknown {
  return event === undefined || event.deleted ? initial : event.state
}

/** The server's history of one store, indexed by version. */
function historyOf(committed: readonly CommittedEvent[], storeKey: string): CommittedEvent[] {
  return perStore(committed).filter((event) => event.storeKey === storeKey)
}

/** Every store's versions run 1, 2, 3, … and the log's sequence numbers increase by one. */
export function checkContiguous(committed: readonly CommittedEvent[]): string[] {
  const problems: string[] = []
  const versions = new Map<string, number>()
  committed.forEach((event, index) => {
    if (event.seq !== index + 1) problems.push(`log seq ${event.seq} at position ${index + 1}`)
  })
  for (const event of perStore(committed)) {
    const expected = (versions.get(event.storeKey) ?? 0) + 1
    if (event.version !== expected) problems.push(`${event.storeKey}: version ${event.version} where ${expected} was due`)
    versions.set(event.storeKey, event.version)
  }
  return problems
}

/** No (writer, opId) is applied twice, however often it was sent. */
export function checkExactlyOnce(committed: readonly CommittedEvent[]): string[] {
  const seen = new Set<string>()
  const problems: string[] = []
  for (const event of committed) {
    const key = `${event.writer}#${event.opId}`
    if (seen.has(key)) problems.push(`op ${key} applied twice`)
    seen.add(key)
  }
  return problems
}

/**
 * Every `set` settled; each resolved one is in the history (of some epoch) at its version, written
 * by its replica, and no two claim the same write. A replica's writes in the log number at least
 * its resolved ops, and at most those plus the ones rejected as `outcome_unknown` (applied or not)
 * plus one per fresh storage (an op in doubt when a storage was replaced is proposed again on the
 * new one: the history it may have landed in is gone), plus one if the replica was closed (a tab
 * closed with a proposal on the wire: its `set` rejects as `closed`, yet the server may take it; the
 * ops queued behind it were never sent). `writers` gives each replica's writer tags.
 */
export function checkAcknowledged(
  ops: readonly OpRecord[],
  epochs: ReadonlyMap<string, readonly CommittedEvent[]>,
  writers: ReadonlyMap<string, ReadonlySet<string>>,
  freshStorages = 0,
): string[] {
  const problems: string[] = []
  const claimed = new Set<string>()
  const byWrite = new Map<string, CommittedEvent[]>()
  for (const [epoch, committed] of epochs) {
    for (const event of perStore(committed)) {
      const key = `${event.storeKey}@${event.version}`
      const list = byWrite.get(key) ?? []
      list.push(Object.assign({}, event, { id: `${epoch}:${event.id}` }))
      byWrite.set(key, list)
    }
  }
  const counts = new Map<string, { resolved: number; unknown: number; closed: boolean }>()
  for (const op of ops) {
    const count = counts.get(op.replica) ?? { resolved: 0, unknown: 0, closed: false }
    counts.set(op.replica, count)
    if (op.outcome === 'pending') problems.push(`an op of ${op.replica} on ${op.storeKey} never settled`)
    if (op.outcome === 'rejected' && op.error === 'outcome_unknown') count.unknown += 1
    if (op.outcome === 'rejected' && op.error === 'closed') count.closed = true
    if (op.outcome !== 'resolved') continue
    count.resolved += 1
    // An action resolves with no version to look up: the count below holds it to exactly once.
    if (op.action !== undefined) continue
    const write = `${op.storeKey}@${op.version}`
    const tags = writers.get(op.replica)
    const mine = (byWrite.get(write) ?? []).filter((event) => tags?.has(event.writer))
    const unclaimed = mine.find((event) => !claimed.has(event.id))
    if (mine.length === 0) problems.push(`acknowledged op of ${op.replica} (${write}) is not in the history as its write`)
    else if (unclaimed === undefined) problems.push(`two acknowledged ops claim ${write}`)
    else claimed.add(unclaimed.id)
  }
  const all = [...epochs.values()].flat()
  for (const [replica, { resolved, unknown, closed }] of counts) {
    const tags = writers.get(replica) ?? new Set()
    const applied = all.filter((event) => tags.has(event.writer)).length
    if (applied < resolved || applied > resolved + unknown + freshStorages + (closed ? 1 : 0)) {
      problems.push(`${replica}: ${applied} writes in the log for ${resolved} acknowledged ops (${unknown} of unknown outcome)`)
    }
  }
  return problems
}

/**
 * No edit of the merging store was lost or misplaced: each acknowledged one made its version out
 * of the version just before it, exactly as its updater would (whatever base the replica proposed
 * it on: a merged patch lands on the current state, not on its base). Its version is looked up in
 * every epoch, among the writes of its replica; `checkAcknowledged` says whether it is there at all.
 */
export function checkItemEdits(
  ops: readonly OpRecord[],
  epochs: ReadonlyMap<string, readonly CommittedEvent[]>,
  writers: ReadonlyMap<string, ReadonlySet<string>>,
  initial: readonly unknown[],
): string[] {
  const problems: string[] = []
  const histories = [...epochs.values()].map((committed) => historyOf(committed, 'items'))
  for (const op of ops) {
    if (op.edit === undefined || op.outcome !== 'resolved' || op.version === undefined) continue
    const version = op.version
    const tags = writers.get(op.replica)
    const candidates = histories.filter((history) => tags?.has(history[version - 1]?.writer ?? '') === true)
    if (candidates.length === 0) continue
    const made = candidates.some((history) => {
      const before = version === 1 ? initial : (history[version - 2]?.state as unknown[])
      const event = history[version - 1] as CommittedEvent
      if (same(event.state, applyItemEdit(before, op.edit as ItemEdit))) return true
      return insertedWithoutAnchor(before, event.state as readonly ItemLike[], op.edit as ItemEdit)
    })
    if (!made) problems.push(`items v${version} is not v${version - 1} with ${op.replica}'s ${JSON.stringify(op.edit)}`)
  }
  return problems
}

/**
 * An insert whose anchor is not in the version it landed on (removed, or an item its replica saw
 * only as another tab's pending insert): its patch anchors it after the item before it in the
 * replica's own list, so it lands somewhere, once, with every other item kept in order.
 */
function insertedWithoutAnchor(before: readonly unknown[], after: readonly ItemLike[], edit: ItemEdit): boolean {
  if (edit.kind !== 'insert' || edit.after === null || (before as readonly ItemLike[]).some((item) => item.id === edit.after)) return false
  const at = after.findIndex((item) => item.id === edit.id)
  if (at < 0 || after.filter((item) => item.id === edit.id).length !== 1) return false
  return same([...after.slice(0, at), ...after.slice(at + 1)], before) && same(after[at], { id: edit.id, title: edit.id, done: false })
}

/**
 * Each store's history is linearizable as a compare-and-set register with versions. The versions
 * order the writes, so the check is that this order agrees with real time and with every answer:
 * - a write acknowledged before another write was invoked has the lower version;
 * - a 409 reports a version that had been written (by a write invoked before the answer came),
 *   with that write's state, and not one overwritten before the request went out;
 * - a 200 reports its own write's version and state, past the proposal's base: right after it,
 *   or later only for a patch to a store in `merging` (merged over the changes since its base).
 * Attempts that were never answered may take effect at any time after they were sent.
 */
export function checkLinearizable(
  attempts: readonly Attempt[],
  committed: readonly CommittedEvent[],
  initial: Record<string, unknown>,
  merging: ReadonlySet<string> = new Set(),
  byServer: (writer: string) => boolean = () => false,
): string[] {
  const problems: string[] = []
  const storeKeys = new Set(perStore(committed).map((event) => event.storeKey))
  // The earliest invocation of each applied op (a set, or an action of any stores): the write took effect after it.
  const firstSent = new Map<string, number>()
  for (const attempt of attempts) {
    const key = `${writerTag(attempt.clientId)}#${attempt.opId}`
    if (!firstSent.has(key)) firstSent.set(key, attempt.invokedAt)
  }
  for (const storeKey of storeKeys) {
    const history = historyOf(committed, storeKey)
    const ofStore = attempts.filter((attempt) => attempt.storeKey === storeKey)
    const invokedAt = (event: CommittedEvent) => firstSent.get(`${event.writer}#${event.opId}`) ?? Number.NaN
    // When each version was first known to have been acknowledged.
    const ackedAt = new Map<number, number>()
    for (const attempt of ofStore) {
      if (attempt.status !== 200 || attempt.answer === undefined || attempt.respondedAt === undefined) continue
      const { version, state } = attempt.answer
      const event = history[version - 1]
      if (attempt.answer.duplicate) {
        // Processed long ago, answered with the current truth: at or after the op's own write.
        const own = history.find((e) => e.writer === writerTag(attempt.clientId) && e.opId === attempt.opId)
        if (own === undefined || own.version > version || event === undefined || !same(state, stateAt(event, initial[storeKey]))) {
          problems.push(`${storeKey}: duplicate 200 for ${attempt.clientId}#${attempt.opId} at v${version} does not follow its write`)
        }
        continue
      }
      if (event === undefined || event.writer !== writerTag(attempt.clientId) || event.opId !== attempt.opId) {
        problems.push(`${storeKey}: 200 for ${attempt.clientId}#${attempt.opId} at v${version}, which is another write`)
        continue
      }
      if ((attempt.answer.deleted === true) !== (event.deleted === true)) problems.push(`${storeKey}: 200 at v${version} says deleted ${attempt.answer.deleted}, the log ${event.deleted}`)
      else if (!event.deleted && !same(stateSaid(attempt.answer, history, initial[storeKey]), event.state)) problems.push(`${storeKey}: 200 at v${version} with a state the log does not have`)
      if (version <= attempt.baseVersion) problems.push(`${storeKey}: 200 at v${version} for a proposal on v${attempt.baseVersion}`)
      else if (version > attempt.baseVersion + 1 && (attempt.patch === undefined || !merging.has(storeKey))) {
        problems.push(`${storeKey}: 200 at v${version} for a ${attempt.patch === undefined ? 'state' : 'patch'} on v${attempt.baseVersion}, which cannot merge`)
      }
      ackedAt.set(version, Math.min(ackedAt.get(version) ?? Number.POSITIVE_INFINITY, attempt.respondedAt))
    }
    // Real-time order: no write may get a lower version than one acknowledged before it was sent.
    const acks = [...ackedAt.entries()].sort((a, b) => a[1] - b[1])
    const bySending = history.map((event) => ({ event, invoked: invokedAt(event) })).sort((a, b) => a.invoked - b.invoked)
    let ackIndex = 0
    let highestAcked = 0
    for (const { event, invoked } of bySending) {
      // Server code's writes (deletions, a store created again) are no client's: nothing to order them by.
      if (byServer(event.writer)) continue
      if (Number.isNaN(invoked)) {
        problems.push(`${storeKey}: v${event.version} was written by an op nobody sent`)
        continue
      }
      while (ackIndex < acks.length && (acks[ackIndex] as [number, number])[1] < invoked) {
        highestAcked = Math.max(highestAcked, (acks[ackIndex] as [number, number])[0])
        ackIndex++
      }
      if (highestAcked > event.version) {
        problems.push(`${storeKey}: v${highestAcked} was acknowledged before v${event.version} was even sent`)
      }
    }
    // Conflicts: the reported version was written, visible in time, with its state, and not stale.
    for (const attempt of ofStore) {
      if (attempt.status !== 409 || attempt.answer === undefined || attempt.respondedAt === undefined) continue
      const { version } = attempt.answer
      const state = stateSaid(attempt.answer, history, initial[storeKey])
      if (version === attempt.baseVersion) problems.push(`${storeKey}: 409 for a proposal on the current version`)
      const written = version === 0 ? undefined : history[version - 1]
      if (version > history.length) problems.push(`${storeKey}: 409 reports v${version}, never written`)
      else if ((attempt.answer.deleted === true) !== (written?.deleted === true)) problems.push(`${storeKey}: 409 at v${version} says deleted ${attempt.answer.deleted}, the log ${written?.deleted}`)
      else if (!written?.deleted && !same(state, stateAt(written, initial[storeKey]))) problems.push(`${storeKey}: 409 at v${version} with a state the log does not have`)
      if (written !== undefined && invokedAt(written) > attempt.respondedAt) {
        problems.push(`${storeKey}: 409 reports v${version} before anyone sent it`)
      }
      const nextAck = ackedAt.get(version + 1)
      if (nextAck !== undefined && nextAck < attempt.invokedAt) {
        problems.push(`${storeKey}: 409 reports v${version}, but v${version + 1} was acknowledged before the request`)
      }
    }
  }
  return problems
}

/**
 * The state an answer says: its own, or its patches applied to the log's state at the version
 * before them (so a patch that does not rebuild the log's state is caught like a wrong state).
 */
function stateSaid(answer: { version: number; state: unknown; patches?: readonly unknown[] }, history: readonly CommittedEvent[], initial: unknown): unknown {
  if (answer.patches === undefined) return answer.state
  const from = answer.version - answer.patches.length
  let state = from === 0 ? initial : stateAt(history[from - 1], initial)
  try {
    for (const patch of answer.patches) state = applyPatch(state, patch as Parameters<typeof applyPatch>[1])
  } catch {
    return Symbol('patches that do not apply')
  }
  return state
}

/**
 * A proxy's HTML 413 refuses the op for good: for each replica, every 413 it was answered is one of
 * its ops rejected with `http_413`, or with `outcome_unknown` caused by it when an earlier attempt
 * was in doubt (and so not resolved, and not counted as applied above), and no op was refused so
 * without one. `attempts` are every proposal sent; `writers` each replica's tags.
 */
export function checkRefusedByProxy(
  ops: readonly OpRecord[],
  attempts: readonly Attempt[],
  writers: ReadonlyMap<string, ReadonlySet<string>>,
): string[] {
  const problems: string[] = []
  for (const [replica, tags] of writers) {
    const answered = attempts.filter((attempt) => attempt.proxy === 'too_large' && tags.has(writerTag(attempt.clientId))).length
    const refused = ops.filter(
      (op) => op.replica === replica && op.outcome === 'rejected' && (op.error === 'http_413' || (op.error === 'outcome_unknown' && op.cause === 'http_413')),
    ).length
    if (answered !== refused) problems.push(`${replica}: ${answered} HTML 413 answers, ${refused} ops rejected as http_413`)
  }
  return problems
}

/**
 * Deletions and the stores created again: in one epoch's log, how many changes deleted a store,
 * and how many wrote one whose previous version was a deletion.
 */
export function countDeletions(committed: readonly CommittedEvent[]): { deletions: number; recreations: number } {
  const deletedNow = new Set<string>()
  let deletions = 0
  let recreations = 0
  for (const event of perStore(committed)) {
    if (event.deleted) {
      deletions += 1
      deletedNow.add(event.storeKey)
    } else if (deletedNow.delete(event.storeKey)) recreations += 1
  }
  return { deletions, recreations }
}

/** The stores whose last change in `committed` deleted them. */
export function deletedAtEnd(committed: readonly CommittedEvent[]): Set<string> {
  const deleted = new Set<string>()
  for (const event of perStore(committed)) {
    if (event.deleted) deleted.add(event.storeKey)
    else deleted.delete(event.storeKey)
  }
  return deleted
}

/**
 * A store that counts its writes since it was (last) created: every version that is not a deletion
 * holds one more than the version before it, which holds `initial` when it is version 0 or a
 * deletion. Rebasing an op across a deletion must start it over from the initial state.
 */
export function checkCounting(committed: readonly CommittedEvent[], storeKey: string, initial: number): string[] {
  const problems: string[] = []
  let before: unknown = initial
  for (const event of historyOf(committed, storeKey)) {
    const now = stateAt(event, initial)
    if (!event.deleted && now !== (before as number) + 1) problems.push(`${storeKey} v${event.version} holds ${JSON.stringify(now)} after ${JSON.stringify(before)}`)
    before = now
  }
  return problems
}

/**
 * No resurrection from a stale base: a `set` made while its replica showed version `m` of a
 * store, and acknowledged at version `v`, must not have crossed a deletion (one at a version `d`
 * between `m` and `v`): made before the deletion, it either committed before it or was refused
 * with `store_deleted`. Its write is looked up in the epoch it was made in, among its replica's
 * writes (`checkAcknowledged` says whether it is there at all). Either it created the store
 * again (`v` is `d + 1`: a resurrection), or it was rebased onto a store someone else created
 * again in between. A deletion by the op's own replica does not count: its ops go in order, so
 * one made before that deletion lands before it.
 */
export function checkNoResurrection(
  ops: readonly OpRecord[],
  epochs: ReadonlyMap<string, readonly CommittedEvent[]>,
  writers: ReadonlyMap<string, ReadonlySet<string>>,
): string[] {
  const problems: string[] = []
  const histories = new Map<string, CommittedEvent[]>()
  const historyIn = (epoch: string, storeKey: string): CommittedEvent[] => {
    let history = histories.get(`${epoch}/${storeKey}`)
    if (history === undefined) {
      history = historyOf(epochs.get(epoch) ?? [], storeKey)
      histories.set(`${epoch}/${storeKey}`, history)
    }
    return history
  }
  for (const op of ops) {
    if (op.action !== undefined || op.outcome !== 'resolved' || op.version === undefined || op.madeOn === undefined) continue
    const { version: made, epoch } = op.madeOn
    const landed = op.version
    const history = historyIn(epoch, op.storeKey)
    const written = history[landed - 1]
    if (written === undefined || writers.get(op.replica)?.has(written.writer) !== true) continue
    // The latest deletion the op crossed, if any: not its own replica's, whose later ops were made on it (its ops go in order).
    const crossed = history.slice(made, landed - 1).findLast((event) => event.deleted && writers.get(op.replica)?.has(event.writer) !== true)
    if (crossed === undefined) continue
    const by = [...writers].find(([, tags]) => tags.has(crossed.writer))?.[0] ?? 'server code'
    const what = `${op.replica}'s set of ${op.storeKey}, made on v${made}, landed at v${landed} past its deletion at v${crossed.version} by ${by}`
    problems.push(landed === crossed.version + 1 ? `${what}: it brought the store back` : `${what}, rebased onto the store created again`)
  }
  return problems
}

/**
 * Watches what a replica shows of `storeKeys`: within one epoch, a store's version never goes
 * back (a deletion keeps it, a store created again goes on from it). `epochOf` reads the epoch
 * the replica is in; problems go to `report`. Returns the unsubscribe.
 */
export function watchVersions(
  name: string,
  replica: { store(storeKey: string): StoreView & { subscribe(listener: () => void): () => void } },
  storeKeys: readonly string[],
  epochOf: () => string | undefined,
  report: (problem: string) => void,
): () => void {
  const stops = storeKeys.map((storeKey) => {
    const store = replica.store(storeKey)
    let last = { epoch: epochOf(), version: store.version }
    let settling = false
    return store.subscribe(() => {
      if (settling) return
      const now = { epoch: epochOf(), version: store.version }
      if (now.epoch !== last.epoch) {
        // A new epoch restarts versions once the snapshot that brought it is applied (its id is noted first).
        settling = true
        queueMicrotask(() => {
          settling = false
          last = { epoch: epochOf(), version: store.version }
        })
        return
      }
      if (now.version < last.version) report(`${name} showed ${storeKey} v${now.version} after v${last.version}, in one epoch`)
      last = now
    })
  })
  return () => {
    for (const stop of stops) stop()
  }
}

/** What the convergence check reads of a store, on the server or on a replica. */
export interface StoreView {
  readonly version: number
  get(): unknown
}

/**
 * After quiescence every replica (every open tab included) shows, store by store, exactly the
 * server's version and state: not its own unconfirmed state, not another tab's, not what it sent
 * before the server's schema transformed it. A store the server never wrote (version 0) only has
 * to agree on the version: its state there is whatever initial state the replica was given.
 */
export function checkConverged(
  server: (storeKey: string) => StoreView,
  replicas: ReadonlyMap<string, { store(storeKey: string): StoreView; pending: { get(): number } }>,
  storeKeys: readonly string[],
  deleted: { has(storeKey: string): boolean; initial(storeKey: string): unknown } = { has: () => false, initial: () => undefined },
): string[] {
  const problems: string[] = []
  for (const storeKey of storeKeys) {
    const truth = server(storeKey)
    // A deleted store shows, at its tombstone's version, the initial state the replica was given.
    const expected = deleted.has(storeKey) ? deleted.initial(storeKey) : truth.get()
    for (const [name, replica] of replicas) {
      const shown = replica.store(storeKey)
      const sameState = truth.version === 0 || same(shown.get(), expected)
      if (shown.version !== truth.version || !sameState) {
        problems.push(
          `${name} shows ${storeKey} v${shown.version} ${JSON.stringify(shown.get())?.slice(0, 60)}, the server v${truth.version} ${JSON.stringify(truth.get())?.slice(0, 60)}`,
        )
      }
    }
  }
  for (const [name, replica] of replicas) {
    if (replica.pending.get() !== 0) problems.push(`${name} still has ${replica.pending.get()} pending ops`)
  }
  return problems
}
