import type { CommitOutcome, OpAnswer, OpIdentity, RefusalAnswer } from './storage'

/** Defaults of what a storage keeps per client. */
export const CLIENT_DEFAULTS = {
  /** Answers kept per client. One is enough for a client that sends one op at a time. */
  idempotencyWindow: 16,
  /** A client silent for this long may be forgotten: 30 days. */
  clientLifetimeMs: 30 * 24 * 60 * 60 * 1000,
} as const

/** What a storage keeps per client; every storage takes these options. */
export interface ClientRecordOptions {
  /** Answers kept per client for retries of ops already processed. Default 16; 1 is enough for Zuno's client. */
  idempotencyWindow?: number
  /** A client with no op processed for this long may be forgotten (its next op gets `unknown_client`). Default 30 days. */
  clientLifetimeMs?: number
  /** The clock the lifetime is measured on. Default `Date.now`. */
  now?: () => number
}

/** What a storage keeps of one client, advanced atomically with the client's writes. */
export interface ClientRecord {
  /** The highest opId processed (accepted, or refused for good). */
  mark: number
  /** The answers to the last ops processed, oldest first. */
  answers: KeptAnswer[]
  /** When the client last had an op processed (ms since the epoch). */
  seenAt: number
}

/** One kept answer. */
export interface KeptAnswer {
  opId: number
  digest: string
  answer: OpAnswer
}

/** The key of a client's record: client ids are scoped to their principal. */
export function clientKey(op: { principal: string; clientId: string }): string {
  return `${op.principal.length}:${op.principal}:${op.clientId}`
}

/** The principal and client id a {@link clientKey} was made of. */
export function parseClientKey(key: string): { principal: string; clientId: string } {
  const colon = key.indexOf(':')
  const start = colon + 1
  const end = start + Number(key.slice(0, colon))
  return { principal: key.slice(start, end), clientId: key.slice(end + 1) }
}

/**
 * One kept answer as the ledger holds it, a slot of its client's ring. Slots are overwritten in
 * place once the ring is full, and an acceptance is kept as its fields: a kept answer lives for
 * `window` ops of its client, long enough to outlive a young-generation collection, so an object
 * made per op would be copied and promoted once per op.
 */
class AnswerSlot {
  constructor(
    public opId: number,
    public digest: string,
    public storeKey: string,
    public version: number,
    public seq: number,
    /** Set for a refusal for good; `storeKey`, `version` and `seq` then mean nothing. */
    public refusal: RefusalAnswer | undefined,
  ) {}

  /** The answer; an acceptance as a new object, since the slot may be overwritten while a caller still holds it. */
  answer(): OpAnswer {
    if (this.refusal !== undefined) return this.refusal
    return { type: 'accepted', storeKey: this.storeKey, version: this.version, seq: this.seq }
  }
}

/** A client's record as the ledger holds it. */
interface LedgerRecord {
  readonly principal: string
  readonly clientId: string
  mark: number
  seenAt: number
  /** When it last moved to the back of the ledger's map. */
  movedAt: number
  /** At most `window` answers; once full, `next` is the oldest, overwritten by the next op. */
  slots: AnswerSlot[]
  next: number
}

/**
 * The client records of a storage that keeps its truth in this process (memory, file): found per
 * principal, then client id, and kept in one set in order of when each record last moved to its
 * back, so records past the client lifetime are dropped from its front. A record moves at most
 * once per sweep interval, not on every op: a delete and an insert per op cost more than the rest
 * of the bookkeeping together. Two levels rather than one map by `clientKey`: that key would be a
 * new string to build, flatten and hash on every op.
 */
export class ClientLedger {
  readonly #byPrincipal = new Map<string, Map<string, LedgerRecord>>()
  /**
   * Every record, in order of when it last moved: the sweep walks it from the front and stops at
   * the first record that moved recently, so a sweep costs what it drops, not one step per principal.
   */
  readonly #byMove = new Set<LedgerRecord>()
  /** When expired records were last dropped: a sweep per op would cost an iterator each time. */
  #sweptAt = Number.NEGATIVE_INFINITY
  /** How often expired records are dropped, and how stale a record's place may be, in ms. */
  readonly #sweepEvery: number
  /** The op last decided or recorded, with its record and time: an accepted op is decided, then recorded. */
  #lastOp: OpIdentity | undefined
  #lastRecord: LedgerRecord | undefined
  #lastAt = 0

  readonly window: number
  readonly lifetimeMs: number
  readonly now: () => number

  constructor(options: ClientRecordOptions = {}) {
    const window = (this.window = options.idempotencyWindow ?? CLIENT_DEFAULTS.idempotencyWindow)
    const lifetimeMs = (this.lifetimeMs = options.clientLifetimeMs ?? CLIENT_DEFAULTS.clientLifetimeMs)
    this.now = options.now ?? Date.now
    if (!Number.isSafeInteger(window) || window < 1) throw new RangeError('idempotencyWindow must be a positive integer')
    if (!(lifetimeMs > 0)) throw new RangeError('clientLifetimeMs must be positive')
    this.#sweepEvery = Math.min(1000, lifetimeMs / 4)
  }

  /**
   * Decides an op against what is kept of its client: `undefined` when it is the client's next op
   * (go on and compare versions), else the outcome to answer with, and nothing changes.
   */
  decide(op: OpIdentity): CommitOutcome | undefined {
    const now = this.now()
    if (now - this.#sweptAt >= this.#sweepEvery) this.#forgetExpired(now)
    const found = this.#find(op)
    this.#lastOp = op
    this.#lastRecord = found
    this.#lastAt = now
    // Between sweeps, a record past its lifetime still counts as forgotten.
    const record = found !== undefined && found.seenAt < now - this.lifetimeMs ? undefined : found
    const mark = record?.mark ?? 0
    // A resent first op, where a record of its earlier attempt could have expired: it may have run.
    if (record === undefined && op.resentAfterMs !== undefined && op.resentAfterMs * 2 >= this.lifetimeMs) return { type: 'unknown_client' }
    if (op.opId > mark) return op.opId === mark + 1 ? undefined : { type: 'unknown_client' }
    const kept = record?.slots.find((slot) => slot.opId === op.opId)
    if (kept === undefined) return { type: 'processed' }
    return kept.digest === op.digest ? { type: 'answered', answer: kept.answer() } : { type: 'reused' }
  }

  /** Records that `op` was accepted as version `version` of `storeKey`, the `seq`-th event, at `at` (default: when it was decided, else now). */
  recordAccepted(op: OpIdentity, storeKey: string, version: number, seq: number, at?: number): void {
    this.#keep(op, storeKey, version, seq, undefined, at)
  }

  /** Records that `op` was refused for good with `refusal`. */
  recordRefused(op: OpIdentity, refusal: RefusalAnswer, at?: number): void {
    this.#keep(op, refusal.storeKey, 0, 0, refusal, at)
  }

  #keep(op: OpIdentity, storeKey: string, version: number, seq: number, refusal: RefusalAnswer | undefined, at: number | undefined): void {
    // Decided just before: its lookup and its clock reading still hold.
    const decided = op === this.#lastOp
    const when = at ?? (decided ? this.#lastAt : this.now())
    const existing = decided ? this.#lastRecord : this.#find(op)
    // One past its lifetime but not swept yet is gone already: its answers must not carry over.
    const live = existing !== undefined && existing.seenAt >= when - this.lifetimeMs ? existing : undefined
    const record = live ?? { principal: op.principal, clientId: op.clientId, mark: 0, seenAt: when, movedAt: when, slots: [], next: 0 }
    if (record.slots.length < this.window) {
      record.slots.push(new AnswerSlot(op.opId, op.digest, storeKey, version, seq, refusal))
    } else {
      const slot = record.slots[record.next] as AnswerSlot
      slot.opId = op.opId
      slot.digest = op.digest
      slot.storeKey = storeKey
      slot.version = version
      slot.seq = seq
      slot.refusal = refusal
      record.next = (record.next + 1) % this.window
    }
    record.mark = op.opId
    record.seenAt = when
    if (record !== existing) {
      const { principal, clientId } = op
      let clients = this.#byPrincipal.get(principal)
      if (clients === undefined) this.#byPrincipal.set(principal, (clients = new Map()))
      clients.set(clientId, record)
      if (existing !== undefined) this.#byMove.delete(existing)
    }
    // Also when the clock went back past its last move: a place taken at a time stepped ahead would
    // otherwise stay first in line for good, and the sweep, which stops there, would keep every record behind it.
    if (record !== existing || when - record.movedAt >= this.#sweepEvery || when < record.movedAt) {
      this.#byMove.delete(record) // re-inserted last: the set stays in order of moves
      this.#byMove.add(record)
      record.movedAt = when
    }
    this.#lastOp = op
    this.#lastRecord = record
    this.#lastAt = when
  }

  /** Every record, by key, oldest use first: what a durable storage writes down. */
  entries(): Array<[string, ClientRecord]> {
    this.#forgetExpired(this.now())
    const entries: Array<[string, ClientRecord]> = []
    for (const [principal, clients] of this.#byPrincipal) {
      for (const [clientId, { mark, seenAt, slots, next }] of clients) {
        const oldestFirst = slots.slice(next).concat(slots.slice(0, next))
        const answers = oldestFirst.map((slot) => ({ opId: slot.opId, digest: slot.digest, answer: slot.answer() }))
        entries.push([clientKey({ principal, clientId }), { mark, answers, seenAt }])
      }
    }
    return entries.sort((a, b) => a[1].seenAt - b[1].seenAt)
  }

  /** Restores records written down by {@link entries}. */
  restore(entries: Iterable<[string, ClientRecord]>): void {
    const byUse = [...entries].sort((a, b) => a[1].seenAt - b[1].seenAt)
    for (const [key, { mark, answers, seenAt }] of byUse) {
      // A window smaller than the one they were written with keeps the newest answers.
      const slots = answers.slice(-this.window).map(({ opId, digest, answer }) =>
        answer.type === 'accepted'
          ? new AnswerSlot(opId, digest, answer.storeKey, answer.version, answer.seq, undefined)
          : new AnswerSlot(opId, digest, answer.storeKey, 0, 0, answer),
      )
      const { principal, clientId } = parseClientKey(key)
      let clients = this.#byPrincipal.get(principal)
      if (clients === undefined) this.#byPrincipal.set(principal, (clients = new Map()))
      const replaced = clients.get(clientId)
      if (replaced !== undefined) this.#byMove.delete(replaced)
      const record: LedgerRecord = { principal, clientId, mark, seenAt, movedAt: seenAt, slots, next: 0 }
      clients.set(clientId, record)
      this.#byMove.add(record)
    }
    this.#lastOp = undefined
    this.#forgetExpired(this.now())
  }

  #find(op: OpIdentity): LedgerRecord | undefined {
    return this.#byPrincipal.get(op.principal)?.get(op.clientId)
  }

  #forgetExpired(now: number): void {
    this.#sweptAt = now
    const oldest = now - this.lifetimeMs
    for (const record of this.#byMove) {
      // Every record after this one moved later, so was last seen later: none of them has expired.
      if (record.movedAt >= oldest) break
      if (record.seenAt >= oldest) continue
      this.#byMove.delete(record)
      const clients = this.#byPrincipal.get(record.principal)
      if (clients === undefined) continue
      clients.delete(record.clientId)
      if (clients.size === 0) this.#byPrincipal.delete(record.principal)
    }
    // The cached lookup may be one just dropped.
    this.#lastOp = undefined
  }
}

/**
 * A short digest of an op's content, to tell a retry from a reused opId. Not cryptographic: a
 * client can only collide with its own ops, which are scoped to its principal. Its format is part
 * of what storages keep (a file's log and snapshot, Redis's client hashes, shared by old and new
 * instances during a rolling deploy): changing it turns the retry of an op in doubt across an
 * upgrade into `op_id_reused`.
 */
export function opDigest(storeKey: string, baseVersion: number, stateJson: string): string {
  // Joined, not concatenated: `+` and templates build a tree of string pieces, and a kept digest
  // would hold the whole tree (four times the memory) for as long as its answer is kept.
  return [storeKey, baseVersion, stateJson.length, base36(hash53(stateJson))].join(':')
}

/** 36 to the 5th: a 53-bit number splits into two parts V8 keeps as small integers. */
const BASE36_LOW = 60_466_176

/**
 * `n.toString(36)` for a non-negative safe integer, faster: V8 writes a large double in another
 * radix digit by digit in floating point, a small integer on a fast path. Same text, so digests
 * stay the ones storages already hold.
 */
export function base36(n: number): string {
  const high = Math.floor(n / BASE36_LOW)
  const low = n - high * BASE36_LOW
  return high === 0 ? low.toString(36) : high.toString(36) + low.toString(36).padStart(5, '0')
}

/** A 53-bit string hash (two 32-bit multiply-xor lanes). */
function hash53(text: string): number {
  let h1 = 0xdeadbeef
  let h2 = 0x41c6ce57
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ code, 2654435761)
    h2 = Math.imul(h2 ^ code, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return 4294967296 * (2097151 & h2) + (h1 >>> 0)
}
