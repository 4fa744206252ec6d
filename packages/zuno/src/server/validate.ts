import { ZunoError } from '../errors'
import { toJsonValue } from './json'
import {
  ACTION_NAME_PATTERN,
  type ActionRequest,
  CLIENT_ID_PATTERN,
  EPOCH_PATTERN,
  isNonNegativeInteger,
  type PatchRequest,
  DEFAULT_LIMITS,
  STORE_KEY_PATTERN,
  type SyncRequest,
} from '../protocol'
import { patchProblem } from './patchRules'

/** A `POST /sync` body: a state proposal, a patch proposal, or an action. */
export type Proposal = SyncRequest | PatchRequest | ActionRequest

/** Whether a checked body proposes an action. */
export function isActionRequest(proposal: Proposal): proposal is ActionRequest {
  return 'action' in proposal
}

/** Whether a checked body proposes a patch. */
export function isPatchRequest(proposal: Proposal): proposal is PatchRequest {
  return 'patch' in proposal
}

const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const QUOTE = 0x22
const BACKSLASH = 0x5c
const PLUS = 0x2b
const DOT = 0x2e
const DIGIT_0 = 0x30
const DIGIT_9 = 0x39
const LOWER_E = 0x65
const UPPER_E = 0x45

/** What {@link scanJsonText} found: nothing, nesting past the bound, or a number that may read as Infinity. */
export const TEXT_OK = 0
export const TEXT_TOO_DEEP = 1
export const TEXT_HUGE_NUMBER = 2

/**
 * One linear pass over JSON text before it is parsed, so a hostile body is refused before
 * `JSON.parse` spends anything on it: {@link TEXT_TOO_DEEP} when arrays and objects nest deeper
 * than `maxDepth`, else {@link TEXT_HUGE_NUMBER} when a number has a long exponent, 309 digits, or
 * digits and exponent adding up to 309 (`JSON.parse` reads 1e400 and 9…9e9 as Infinity, which JSON
 * cannot say back), else {@link TEXT_OK}.
 */
export function scanJsonText(text: string, maxDepth: number): number {
  let depth = 0
  let digits = 0
  let huge = false
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (isDigit(code)) {
      if (++digits >= 309) huge = true
      continue
    }
    // A number's fraction digits count with its whole digits: conservative, and one counter.
    if (code === DOT) continue
    const mantissa = digits
    digits = 0
    if (code === QUOTE) {
      // Jump over the string: indexOf beats a loop over each character of the long strings of a body.
      let end = text.indexOf('"', i + 1)
      while (end > 0 && isEscaped(text, end)) end = text.indexOf('"', end + 1)
      if (end < 0) break // unterminated: JSON.parse says so
      i = end
    } else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
      if (++depth > maxDepth) return TEXT_TOO_DEEP
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      depth--
    } else if (code === LOWER_E || code === UPPER_E) {
      // Outside strings an `e` is an exponent, or part of `true` or `false`, which no digit follows.
      let next = i + 1
      if (text.charCodeAt(next) === PLUS) next++
      let exponent = 0
      let power = 0
      while (exponent < 3 && isDigit(text.charCodeAt(next + exponent))) power = power * 10 + text.charCodeAt(next + exponent++) - DIGIT_0
      // 10^(digits + power) bounds the number: a short exponent can carry a long mantissa past 1.8e308.
      if (exponent === 3 || mantissa + power >= 309) huge = true
    }
  }
  return huge ? TEXT_HUGE_NUMBER : TEXT_OK
}

/** True when arrays and objects in JSON text nest deeper than `maxDepth` (see {@link scanJsonText}). */
export function textExceedsDepth(text: string, maxDepth: number): boolean {
  return scanJsonText(text, maxDepth) === TEXT_TOO_DEEP
}

function isDigit(code: number): boolean {
  return code >= DIGIT_0 && code <= DIGIT_9
}

/** Whether the quote at `at` is escaped: an odd number of backslashes before it. */
function isEscaped(text: string, at: number): boolean {
  let backslashes = 0
  while (text.charCodeAt(at - 1 - backslashes) === BACKSLASH) backslashes++
  return backslashes % 2 === 1
}


/** True for `application/json`, with or without parameters. */
export function isJsonContentType(contentType: string | null | undefined): boolean {
  if (!contentType) return false
  const semicolon = contentType.indexOf(';')
  const mediaType = semicolon === -1 ? contentType : contentType.slice(0, semicolon)
  return mediaType.trim().toLowerCase() === 'application/json'
}

/** Parses a raw `POST /sync` body; throws a `ZunoError` naming the first problem. */
export function parseProposalText(text: string, maxDepth: number): Proposal {
  const scanned = scanJsonText(text, maxDepth)
  if (scanned === TEXT_TOO_DEEP) throw new ZunoError('too_deep', `JSON nests deeper than ${maxDepth} levels`)
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new ZunoError('bad_json', 'The body is not valid JSON')
  }
  const proposal = validateProposal(body, maxDepth)
  // Only a long exponent or a very long number can make Infinity: only then is the state walked.
  if (scanned === TEXT_HUGE_NUMBER) checkJsonPayload(proposal, maxDepth)
  return proposal
}

/** Refuses a payload (state or arguments) that is not JSON, such as a number a parser read as Infinity. */
export function checkJsonPayload(proposal: Proposal, maxDepth: number): void {
  if (isPatchRequest(proposal)) toJsonValue(proposal.patch, proposal.storeKey, maxDepth + 1)
  else if (!isActionRequest(proposal)) toJsonValue(proposal.state, proposal.storeKey, maxDepth + 1)
  else if (proposal.args !== undefined) {
    try {
      toJsonValue(proposal.args, proposal.action, maxDepth + 1)
    } catch (error) {
      throw new ZunoError('invalid_args', error instanceof Error ? error.message.replace('The state of', 'The arguments of') : 'The arguments are not JSON')
    }
  }
}

/**
 * Checks a parsed `POST /sync` body; throws a `ZunoError` naming the first problem. `maxDepth`
 * bounds what a patch may build: its path and its value's nesting together, as for a whole state.
 */
export function validateProposal(body: unknown, maxDepth: number = DEFAULT_LIMITS.maxDepth): Proposal {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ZunoError('invalid_body', 'The body must be a JSON object')
  }
  if (Object.hasOwn(body, 'action')) return validateActionRequest(body as Record<string, unknown>)
  const { storeKey, baseVersion, epoch, state, clientId, opId } = body as Record<string, unknown>
  if (typeof storeKey !== 'string' || !STORE_KEY_PATTERN.test(storeKey)) {
    throw new ZunoError('invalid_store_key', `storeKey must match ${STORE_KEY_PATTERN}`)
  }
  if (!isNonNegativeInteger(baseVersion)) {
    throw new ZunoError('invalid_base_version', 'baseVersion must be a non-negative integer')
  }
  checkEpoch(epoch)
  if (Object.hasOwn(body, 'patch')) {
    if (Object.hasOwn(body, 'state')) throw new ZunoError('invalid_body', 'A body carries a state or a patch, not both')
    const { patch } = body as { patch: unknown }
    const problem = patchProblem(patch, maxDepth)
    if (problem !== undefined) throw new ZunoError('invalid_patch', `patch is not a patch: ${problem}`)
    checkOpIds(clientId, opId)
    return { storeKey, baseVersion, epoch, patch: patch as PatchRequest['patch'], clientId, opId: opId as number }
  }
  if (state === undefined || !Object.hasOwn(body, 'state')) {
    throw new ZunoError('missing_state', 'state (or patch) is required')
  }
  checkOpIds(clientId, opId)
  return { storeKey, baseVersion, epoch, state, clientId, opId: opId as number }
}

/** Checks a parsed `POST /sync` body that names an action; throws a `ZunoError` naming the first problem. */
function validateActionRequest(body: Record<string, unknown>): ActionRequest {
  const { action, args, epoch, clientId, opId, resentAfterMs } = body
  if (typeof action !== 'string' || !ACTION_NAME_PATTERN.test(action)) {
    throw new ZunoError('invalid_action', `action must match ${ACTION_NAME_PATTERN}`)
  }
  if (Object.hasOwn(body, 'storeKey') || Object.hasOwn(body, 'state') || Object.hasOwn(body, 'patch')) {
    throw new ZunoError('invalid_body', 'A body names an action or a store and state, not both')
  }
  checkEpoch(epoch)
  checkOpIds(clientId, opId)
  const request: ActionRequest = { action, epoch, clientId, opId: opId as number }
  if (args !== undefined) request.args = args
  if (resentAfterMs !== undefined) {
    if (!isNonNegativeInteger(resentAfterMs)) throw new ZunoError('invalid_body', 'resentAfterMs must be a non-negative integer')
    request.resentAfterMs = resentAfterMs
  }
  return request
}

/** The epoch an op was made in, as every op carries it. */
function checkEpoch(epoch: unknown): asserts epoch is string {
  if (typeof epoch !== 'string' || !EPOCH_PATTERN.test(epoch)) {
    throw new ZunoError('invalid_epoch', `epoch must match ${EPOCH_PATTERN}: the epoch of the event ids the client has seen`)
  }
}

/** The client and the number of an op, as every op carries them (`opId` then a positive integer). */
function checkOpIds(clientId: unknown, opId: unknown): asserts clientId is string {
  if (typeof clientId !== 'string' || !CLIENT_ID_PATTERN.test(clientId)) {
    throw new ZunoError('invalid_client_id', `clientId must match ${CLIENT_ID_PATTERN}`)
  }
  if (!isNonNegativeInteger(opId) || opId < 1) {
    throw new ZunoError('invalid_op_id', 'opId must be a positive integer')
  }
}
