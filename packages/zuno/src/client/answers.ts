import { ZunoError } from '../errors'
import { type ActionAccepted, type ErrorBody, isNonNegativeInteger, PROTOCOL_HEADER, PROTOCOL_VERSION, type SyncAccepted, type SyncConflict } from '../protocol'

/** An answer to a proposal that decided something, in Zuno's own words. */
export interface ProposalAnswer {
  status: number
  body: SyncAccepted | ActionAccepted | SyncConflict | ErrorBody
}

/**
 * Reads the answer to `POST /sync`. Every answer is classified, whoever sent it (the server, or a
 * proxy in front of it):
 * - Zuno's JSON (success or error) is returned as it is, to be handled by its code;
 * - 5xx, 429 and 408 decide nothing: they throw a {@link ZunoError} (`unavailable`,
 *   `rate_limited`) that the replica retries with backoff;
 * - a 401 that is not Zuno's (a proxy's login) still means "credentials": `unauthenticated`;
 * - any other 4xx that is not Zuno's (a proxy's HTML 413, a bare 404) refuses the op with
 *   `http_<status>`: retrying would get the same answer;
 * - a 2xx that is not Zuno's (a captive portal's page) proves nothing was applied: thrown, so the
 *   replica retries it like a network failure;
 * - a redirect (the request is sent with `redirect: 'manual'`; a browser shows it as an opaque
 *   answer with status 0) refuses the op with `redirected`: Zuno never redirects, so something in
 *   front of it (a sign-in wall, a moved URL) did, and following it would only post elsewhere.
 */
export async function readProposalAnswer(response: Response): Promise<ProposalAnswer> {
  const { status } = response
  if (response.type === 'opaqueredirect' || (status >= 300 && status < 400)) {
    const where = response.headers.get('location')
    const message = `The server answered with a redirect${status === 0 ? '' : ` (${status})`}${where ? ` to ${where}` : ''}: check the Zuno URL and what stands in front of it`
    return { status: status === 0 ? 302 : status, body: { ok: false, error: 'redirected', message } }
  }
  if (status >= 500 || status === 429 || status === 408) {
    // Not a refusal of the op: the server (or a proxy) is busy, limiting us, or gave up waiting.
    const retryAfter = Number(response.headers.get('retry-after')) || undefined
    const code = status === 429 ? 'rate_limited' : 'unavailable'
    throw new ZunoError(code, `The server answered ${status}`, retryAfter === undefined ? {} : { retryAfter })
  }
  const named = response.headers.get(PROTOCOL_HEADER)
  if (named !== null && named !== String(PROTOCOL_VERSION)) {
    const message = `The server speaks Zuno protocol ${named}, this client ${PROTOCOL_VERSION}`
    return { status: 400, body: { ok: false, error: 'protocol', message } }
  }
  // A body that cannot be read says nothing of the op: like a dropped connection, it is retried.
  const text = await response.text().catch((cause: unknown) => {
    throw new ZunoError('network', `The answer (${status}) could not be read`, { cause })
  })
  const body = zunoBody(text)
  if (body !== undefined) return { status, body }
  if (status < 400) throw new ZunoError('protocol', `The server answered ${status} with a body that is not Zuno's`)
  const code = status === 401 ? 'unauthenticated' : (`http_${status}` as const)
  return { status, body: { ok: false, error: code, message: `Something in front of the server answered ${status}` } }
}

/**
 * What an HTTP error answer to the stream (`GET /sse`) means, from its status and, where the
 * client could read it, its body: Zuno's code when the body is Zuno's JSON, otherwise a code for
 * the status (`unauthenticated`, `forbidden`, `unavailable`, `rate_limited`, `http_<status>`).
 */
export function streamRefusal(status: number, bodyText: string | undefined, retryAfter?: number): ZunoError {
  const wait = retryAfter === undefined ? {} : { retryAfter }
  const body = bodyText === undefined ? undefined : zunoBody(bodyText)
  if (body !== undefined && body.ok === false && typeof body.error === 'string') {
    return new ZunoError(body.error, 'message' in body ? body.message : `The stream was answered ${status}`, wait)
  }
  const code = status === 401 ? 'unauthenticated' : status === 403 ? 'forbidden' : status === 429 ? 'rate_limited' : status >= 500 ? 'unavailable' : (`http_${status}` as const)
  return new ZunoError(code, `The stream was answered ${status}`, wait)
}

/** True for a refusal of the credentials themselves: asking again with the same ones gets the same answer. */
export function refusesCredentials(error: ZunoError): boolean {
  return error.code === 'unauthenticated' || error.code === 'forbidden' || error.code === 'origin_not_allowed'
}

/** The body as Zuno's JSON, or `undefined` when it is something else (HTML, text, a bare status). */
function zunoBody(text: string): ProposalAnswer['body'] | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined
  const { ok, error, version, changes } = parsed as { ok?: unknown; error?: unknown; version?: unknown; changes?: unknown }
  // An acceptance names the version it made, or an action's the changes it made: `{"ok":true}`
  // alone (someone else's API) proves nothing.
  if (ok === true && (isNonNegativeInteger(version) || Array.isArray(changes))) return parsed as ProposalAnswer['body']
  if (ok === false && typeof error === 'string') return parsed as ProposalAnswer['body']
  return undefined
}
