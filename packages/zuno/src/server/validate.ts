import { ZunoError } from '../errors'
import { toJsonValue } from './json'
import { CLIENT_ID_PATTERN, EPOCH_PATTERN, isNonNegativeInteger, STORE_KEY_PATTERN, type SyncRequest } from '../protocol'

const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const QUOTE = 0x22
const BACKSLASH = 0x5c

/**
 * True when JSON text nests arrays and objects deeper than `maxDepth`. A linear scan of the
 * text, so a hostile body is refused before `JSON.parse` spends anything on it.
 */
export function textExceedsDepth(text: string, maxDepth: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (inString) {
      if (code === BACKSLASH) i++
      else if (code === QUOTE) inString = false
    } else if (code === QUOTE) {
      inString = true
    } else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
      if (++depth > maxDepth) return true
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      depth--
    }
  }
  return false
}

/** The same check for a value some framework already parsed; iterative, so it cannot overflow. */
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

/** True for `application/json`, with or without parameters. */
export function isJsonContentType(contentType: string | null | undefined): boolean {
  if (!contentType) return false
  const semicolon = contentType.indexOf(';')
  const mediaType = semicolon === -1 ? contentType : contentType.slice(0, semicolon)
  return mediaType.trim().toLowerCase() === 'application/json'
}

/** Parses a raw `POST /sync` body; throws a `ZunoError` naming the first problem. */
export function parseProposalText(text: string, maxDepth: number): SyncRequest {
  if (textExceedsDepth(text, maxDepth)) {
    throw new ZunoError('too_deep', `JSON nests deeper than ${maxDepth} levels`)
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new ZunoError('bad_json', 'The body is not valid JSON')
  }
  const proposal = validateProposal(body)
  // JSON.parse reads 1e400 as Infinity, which JSON cannot say back: only a long exponent or a
  // very long number can make one, so only then is the state walked.
  if (HUGE_NUMBER.test(text)) toJsonValue(proposal.state, proposal.storeKey, maxDepth + 1)
  return proposal
}

const HUGE_NUMBER = /[eE]\+?\d{3}|\d{309}/

/** Checks a parsed `POST /sync` body; throws a `ZunoError` naming the first problem. */
export function validateProposal(body: unknown): SyncRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ZunoError('invalid_body', 'The body must be a JSON object')
  }
  const { storeKey, baseVersion, epoch, state, clientId, opId } = body as Record<string, unknown>
  if (typeof storeKey !== 'string' || !STORE_KEY_PATTERN.test(storeKey)) {
    throw new ZunoError('invalid_store_key', `storeKey must match ${STORE_KEY_PATTERN}`)
  }
  if (!isNonNegativeInteger(baseVersion)) {
    throw new ZunoError('invalid_base_version', 'baseVersion must be a non-negative integer')
  }
  if (typeof epoch !== 'string' || !EPOCH_PATTERN.test(epoch)) {
    throw new ZunoError('invalid_epoch', `epoch must match ${EPOCH_PATTERN}: the epoch of the event ids the client has seen`)
  }
  if (state === undefined || !Object.hasOwn(body, 'state')) {
    throw new ZunoError('missing_state', 'state is required')
  }
  if (typeof clientId !== 'string' || !CLIENT_ID_PATTERN.test(clientId)) {
    throw new ZunoError('invalid_client_id', `clientId must match ${CLIENT_ID_PATTERN}`)
  }
  if (!isNonNegativeInteger(opId) || opId < 1) {
    throw new ZunoError('invalid_op_id', 'opId must be a positive integer')
  }
  return { storeKey, baseVersion, epoch, state, clientId, opId }
}
