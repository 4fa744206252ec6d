import { ZunoError } from './errors'

/**
 * The initial state declared for each store of a universe. A store has one, whichever call
 * declares it first: what it shows before anything else is known must not depend on which part
 * of an app happened to ask for the store first.
 */
export class InitialStates {
  readonly #declared = new Map<string, { value: unknown; json: string | undefined }>()

  /**
   * Declares `value` as the initial state of `key`. True when this is the first declaration;
   * false when the same one was made before (equal as JSON, whatever the order of object keys:
   * literals are new objects on every render). Throws `initial_mismatch` when another was.
   */
  declare(key: string, value: unknown): boolean {
    const json = jsonOf(value)
    const earlier = this.#declared.get(key)
    if (earlier === undefined) {
      this.#declared.set(key, { value, json })
      return true
    }
    if (Object.is(earlier.value, value) || (json !== undefined && json === earlier.json)) return false
    throw new ZunoError(
      'initial_mismatch',
      `Store ${JSON.stringify(key)} was declared with the initial state ${earlier.json ?? String(earlier.value)}, not ${json ?? String(value)}: declare it once (connect({ initial }), or the same value everywhere)`,
    )
  }
}

/** The value as JSON with every object's keys sorted: the same literal written with its keys in another order is the same declaration. */
function jsonOf(value: unknown): string | undefined {
  try {
    return JSON.stringify(value, sortedKeys)
  } catch {
    // Not JSON (a cycle, a BigInt): such values compare by identity.
    return undefined
  }
}

function sortedKeys(_key: string, value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}
