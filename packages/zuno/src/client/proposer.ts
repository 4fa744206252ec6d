/**
 * Delivery of proposals, one on the wire at a time: builds the request, sends it, says what the
 * answer means, and times the pause before the next attempt.
 */
import { isZunoError, ZunoError } from '../errors'
import { type ActionRequest, type ErrorBody, PATHS, PROTOCOL_HEADER, PROTOCOL_VERSION, RECORDED_REFUSALS, type StoreChange, type StoreState, type SyncConflict } from '../protocol'
import type { Patch } from '../patch'
import { type ProposalAnswer, readProposalAnswer } from './answers'
import { stateOfAnswer } from './deltas'
import { backoffDelay } from './backoff'
import type { Timers } from './connection'
import { type ActionOp, opLabel, type PendingOp, type StateOp, type WireBody } from './pendingQueue'

const JSON_REQUEST = { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) }
export const CONFLICT_BACKOFF_BASE_MS = 10
export const DELIVERY_BACKOFF_BASE_MS = 100
const BACKOFF_CAP_MS = 5_000

/** What an answer means for its op, for the replica to act on. */
export type Outcome =
  /** `confirmed` is what the server made of it; `opVersion` the version the op made. */
  | { type: 'accepted'; confirmed: StoreState; opVersion: number }
  /** An action was accepted: `changes` are the stores it wrote (none for a `duplicate` whose answer is gone). */
  | { type: 'action_accepted'; changes: StoreChange[] }
  /** Definitive: the op was not applied, and its id stays free for the rebased attempt. */
  | { type: 'conflict'; theirs: StoreState; deletedAt?: number }
  /** The server could not apply the op's patch; it was not applied, and goes again whole. */
  | { type: 'send_whole' }
  /** Not processed: the server is in a newer epoch. */
  | { type: 'epoch_changed'; error: ZunoError }
  /** The server keeps no record of this client. */
  | { type: 'unknown_client' }
  /** Not decided; the same credentials get the same answer: hold until they change. */
  | { type: 'held'; error: ZunoError }
  /** Refused; `used` when the server recorded the refusal (and so used up the id). */
  | { type: 'refused'; error: ZunoError; used: boolean }

/** What a failed delivery (network, 5xx, 429, a body not Zuno's) means. */
export interface DeliveryFailure {
  error: ZunoError
  /** A 429 or a 401 is decided before anything is done; anything else may have been applied. */
  mayHaveApplied: boolean
  /** The server's `Retry-After`, in ms (0 without one). */
  waitAtLeast: number
}

export interface ProposerOptions {
  url: string
  fetch: typeof fetch
  token: (() => string | undefined) | undefined
  timers: Timers
  random: () => number
}

export class Proposer {
  readonly #options: ProposerOptions
  /** A proposal is on the wire, or waiting out a backoff. */
  #busy = false
  #retryTimer: unknown
  /** Aborts the proposal on the wire, if one is: `close()` must not leave a request holding the process open. */
  #abort: AbortController | undefined

  constructor(options: ProposerOptions) {
    this.#options = options
  }

  get busy(): boolean {
    return this.#busy
  }

  /** Marks a proposal as under way (its schema check included), until {@link done}. */
  start(): void {
    this.#busy = true
  }

  /** The proposal under way was answered, failed, or never went. */
  done(): void {
    this.#busy = false
  }

  /** Sends one proposal, as {@link encodeProposal} wrote it, and reads the answer (throws what decides nothing). */
  async send(payload: string): Promise<ProposalAnswer> {
    const token = this.#options.token?.()
    const headers = token === undefined ? JSON_REQUEST : { ...JSON_REQUEST, authorization: `Bearer ${token}` }
    const abort = (this.#abort = new AbortController())
    try {
      const response = await this.#options.fetch(`${this.#options.url}${PATHS.sync}`, {
        method: 'POST',
        headers,
        body: payload,
        signal: abort.signal,
        // Zuno's endpoints never redirect: a redirect (to a sign-in page, say) is refused, not followed.
        redirect: 'manual',
      })
      return await readProposalAnswer(response)
    } finally {
      if (this.#abort === abort) this.#abort = undefined
    }
  }

  /** Proposes again (`next`) after a jittered pause (none for the first retry after a conflict). */
  retry(attempt: number, baseMs: number, next: () => void, waitAtLeast = 0): void {
    if (attempt <= 0) return next()
    this.#busy = true
    this.#retryTimer = this.#options.timers.setTimeout(
      () => {
        this.#retryTimer = undefined
        this.#busy = false
        next()
      },
      Math.max(waitAtLeast, backoffDelay(attempt, baseMs, BACKOFF_CAP_MS, this.#options.random)),
    )
  }

  /** Cuts a pause short; true when one was waited out. */
  flush(): boolean {
    if (this.#retryTimer === undefined) return false
    this.#options.timers.clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    this.#busy = false
    return true
  }

  /** Stops: no more pauses, and the proposal on the wire (if any) is abandoned. */
  close(): void {
    if (this.#retryTimer !== undefined) this.#options.timers.clearTimeout(this.#retryTimer)
    this.#abort?.abort()
  }
}

/**
 * The body of `POST /sync` for `op`. A state JSON cannot hold (a BigInt, a cycle) throws
 * `invalid_state`: it can never be sent, so it is refused, not retried as a failed delivery.
 */
export function encodeProposal(storeKey: string, body: WireBody, op: StateOp): string {
  const { clientId, opId } = op
  try {
    const { baseVersion, epoch, patch } = body
    if (patch !== undefined) return JSON.stringify({ storeKey, baseVersion, epoch, patch, clientId, opId })
    return JSON.stringify({ storeKey, baseVersion, epoch, state: body.state, clientId, opId })
  } catch (cause) {
    throw new ZunoError('invalid_state', `${storeKey}: the state cannot be sent as JSON`, { cause })
  }
}

/**
 * The body of `POST /sync` for an action in `epoch`: the same on every attempt but for the epoch.
 * Arguments JSON cannot hold throw `invalid_args`: the action can never be sent.
 */
export function encodeAction(op: ActionOp, epoch: string, resentAfterMs: number | undefined): string {
  const request: ActionRequest = { action: op.name, epoch, clientId: op.clientId, opId: op.opId }
  if (op.args !== undefined) request.args = op.args
  if (resentAfterMs !== undefined) request.resentAfterMs = resentAfterMs
  try {
    return JSON.stringify(request)
  } catch (cause) {
    throw new ZunoError('invalid_args', `${opLabel(op)}: the arguments cannot be sent as JSON`, { cause })
  }
}

/** What the server's (or a proxy's) answer means for `op`. */
export function classify(op: PendingOp, { status, body }: ProposalAnswer): Outcome {
  if (status === 200 && body.ok) {
    if (op.kind === 'action' && 'changes' in body) return { type: 'action_accepted', changes: body.changes }
    if (op.kind === 'state' && 'version' in body) {
      return { type: 'accepted', confirmed: answeredState(op, body.version, body), opVersion: body.opVersion ?? body.version }
    }
    // An acceptance of the other kind of op: the server did something with this id, but not this op.
    return { type: 'refused', error: new ZunoError('outcome_unknown', `${opLabel(op)}: op ${op.opId} was answered as another kind of op`), used: true }
  }
  const code = (body as Partial<ErrorBody>).error
  const message = (body as Partial<ErrorBody>).message
  // Never for an action: the server's order decides, so an action has nothing to conflict with.
  if (status === 409 && code === 'conflict' && 'version' in body && op.kind === 'state') {
    // Definitive: the op was not applied (nor any earlier attempt: its answer would have been kept),
    // and its id stays free for the rebased attempt.
    if ((body as SyncConflict).deleted) return { type: 'conflict', theirs: { version: body.version, state: undefined, deleted: true } }
    const { deletedAt } = body as SyncConflict
    const theirs = answeredState(op, body.version, body)
    return deletedAt === undefined ? { type: 'conflict', theirs } : { type: 'conflict', theirs, deletedAt }
  }
  // Not applied, and not recorded: a state goes where the patch did not.
  if ((code === 'patch_mismatch' || code === 'invalid_patch') && op.kind === 'state' && op.lastSent?.patch !== undefined) return { type: 'send_whole' }
  if (code === 'epoch_changed') return { type: 'epoch_changed', error: new ZunoError('epoch_changed', message ?? 'The server is in a newer epoch') }
  if (code === 'unknown_client') return { type: 'unknown_client' }
  if (code === 'op_id_reused') {
    // The server processed this id with other content. If the op was in doubt, that may have been
    // this op, in a form it no longer sends: its outcome is not known here. Either way the id is used.
    const error =
      op.doubtedIn !== undefined
        ? new ZunoError('outcome_unknown', `${opLabel(op)}: op ${op.opId} may or may not have been applied`)
        : new ZunoError('op_id_reused', message ?? 'The server processed this id before')
    return { type: 'refused', error, used: true }
  }
  // Not decided, and asking again with the same credentials gets the same answer: the op (and
  // so the queue) waits, under the same ids, until the token changes or the app calls retry().
  if (code === 'unauthenticated') return { type: 'held', error: new ZunoError('unauthenticated', message ?? 'Sign in first') }
  const error = body as Partial<ErrorBody>
  const issues = error.issues === undefined ? {} : { issues: error.issues }
  const refusal = new ZunoError(error.error ?? 'protocol', error.message ?? `The server answered ${status}`, issues)
  const recorded = RECORDED_REFUSALS.has(refusal.code)
  if (!recorded && op.doubtedIn !== undefined) {
    // Refused before the server looked the op up (a proxy's 403 or 413, a redirect): an earlier
    // attempt in doubt may still have been applied. Its outcome is not known, and its id stays used,
    // so the next op never reuses an id the server may have processed.
    const unknown = new ZunoError('outcome_unknown', `${opLabel(op)}: op ${op.opId} may or may not have been applied (then: ${refusal.code})`, { cause: refusal })
    return { type: 'refused', error: unknown, used: true }
  }
  return { type: 'refused', error: refusal, used: recorded }
}

/**
 * The store's version and state an answer names, rebuilt from its patches on what the replica holds
 * when it carries patches. A replica already past them keeps what it holds; one that holds too little
 * cannot read the answer, which is then retried like one that did not come.
 */
function answeredState(op: StateOp, version: number, body: { state?: unknown; patches?: Patch[] }): StoreState {
  const rebuilt = stateOfAnswer(op.replica, version, body)
  if (rebuilt !== undefined) return { version, state: rebuilt.state }
  if (op.replica.confirmed.version >= version) return op.replica.confirmed
  throw new ZunoError('protocol', `${opLabel(op)}: the answer's patches start past the version this replica holds`)
}

/** What a delivery that threw means: the op stays first in line and goes again unchanged after a pause. */
export function classifyFailure(error: unknown): DeliveryFailure {
  const zunoError = isZunoError(error) ? error : new ZunoError('network', 'Could not reach the server', { cause: error })
  const decided = isZunoError(error) && (error.code === 'rate_limited' || error.code === 'unauthenticated')
  const waitAtLeast = isZunoError(error) && error.retryAfter !== undefined ? error.retryAfter * 1000 : 0
  return { error: zunoError, mayHaveApplied: !decided, waitAtLeast }
}
