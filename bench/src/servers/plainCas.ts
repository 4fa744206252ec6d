/**
 * The baselines' route: what a hand-written JSON endpoint would do for a proposal, with the same
 * field checks and the same compare-and-set as Zuno, and nothing else (no log, no idempotency,
 * no streaming). Shared by the node:http, Express and Bun.serve baselines.
 */
const STORE_KEY = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

interface Cell {
  version: number
  state: unknown
}

/** A status and the JSON body to send, which each baseline serializes its idiomatic way. */
export interface Answer {
  status: number
  body: Record<string, unknown>
}

/** Store versions and states, and the proposal check. */
export class PlainCas {
  readonly #cells = new Map<string, Cell>()

  /** Answers a parsed body with a status and a JSON text. */
  propose(body: unknown): Answer {
    const proposal = body as Record<string, unknown> | null
    if (typeof proposal !== 'object' || proposal === null || Array.isArray(proposal)) return fail('invalid_body')
    const { storeKey, baseVersion, clientId, opId } = proposal
    if (typeof storeKey !== 'string' || !STORE_KEY.test(storeKey)) return fail('invalid_store_key')
    if (!Number.isSafeInteger(baseVersion) || (baseVersion as number) < 0) return fail('invalid_base_version')
    if (!('state' in proposal)) return fail('missing_state')
    if (typeof clientId !== 'string' || clientId.length === 0) return fail('invalid_client_id')
    if (!Number.isSafeInteger(opId) || (opId as number) < 0) return fail('invalid_op_id')
    const cell = this.#cells.get(storeKey)
    const version = cell?.version ?? 0
    if (baseVersion !== version) {
      return { status: 409, body: { ok: false, error: 'conflict', storeKey, version, state: cell?.state } }
    }
    const next = { version: version + 1, state: proposal.state }
    this.#cells.set(storeKey, next)
    return { status: 200, body: { ok: true, storeKey, version: next.version, state: next.state } }
  }
}

function fail(error: string): Answer {
  return { status: 400, body: { ok: false, error } }
}

