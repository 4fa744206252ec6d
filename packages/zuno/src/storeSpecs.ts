/**
 * What an app says of each store key: declared by its exact key, or by a family's pattern
 * (`doc:{id}`) that stands for any number of keys. Shared by the server and the client; nothing
 * is kept per key (a family may have a million), only per declaration.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec'
import { compileIdPaths, type IdPaths, type IdPattern } from './patch'
import { STORE_KEY_PATTERN } from './protocol'

/** A store's rule, as the server asks it: whether `principal` may `action` the store. */
export type KeyRule = (check: {
  principal: { id: string } | undefined
  params: Record<string, string>
  action: 'read' | 'write'
  storeKey: string
}) => boolean

/** A store's declaration, as `defineZuno` takes it. */
export interface KeyDeclaration {
  readonly initial?: unknown
  readonly schema?: StandardSchemaV1 | undefined
  readonly ids?: IdPaths | undefined
  readonly merge?: boolean | undefined
  readonly authorize?: KeyRule | undefined
}

/** One declaration, compiled: what every key it covers shares. */
export interface KeySpec {
  /** Whether it has an initial state (a store only given a schema, say, has none). */
  readonly declared: boolean
  readonly initial: unknown
  readonly schema: StandardSchemaV1 | undefined
  readonly ids: readonly IdPattern[]
  readonly merge: boolean
  readonly authorize: KeyRule | undefined
  /** A family's pattern and placeholder names; `undefined` for an exact key. */
  readonly family: { readonly match: RegExp; readonly names: readonly string[] } | undefined
}

/** Whether a `stores` key of an app is meant as a family's pattern (a brace is no store key character). */
export function isFamily(key: string): boolean {
  return /[{}]/.test(key)
}

/** The characters of a store key other than `:`: what one placeholder stands for, one or more. */
const PLACEHOLDER = '([A-Za-z0-9._-]+)'

/** Compiles a family's pattern; throws a `TypeError` when it is not one. */
export function compilePattern(pattern: string): { match: RegExp; names: string[] } {
  const names: string[] = []
  let source = '^'
  let sample = ''
  // Odd parts are the names between braces; even parts the literal text around them.
  const parts = pattern.split(/\{([^{}]*)\}/)
  parts.forEach((part, i) => {
    if (i % 2 === 0) {
      if (i > 0 && i < parts.length - 1 && part === '') throw badPattern(pattern, 'two placeholders must be apart')
      source += part.replace(/\./g, '\\.')
      sample += part
    } else {
      if (!/^[A-Za-z_$][\w$]*$/.test(part) || names.includes(part)) throw badPattern(pattern, `placeholder names must be distinct identifiers, not ${JSON.stringify(part)}`)
      names.push(part)
      source += PLACEHOLDER
      sample += 'a'
    }
  })
  // With each placeholder as one character, a pattern must be a store key: no stray brace, no
  // other character, a letter or digit first, 128 characters at most.
  if (names.length === 0 || !STORE_KEY_PATTERN.test(sample)) throw badPattern(pattern, `its text must be store key characters (${STORE_KEY_PATTERN})`)
  return { match: new RegExp(`${source}$`), names }
}

function badPattern(pattern: string, why: string): TypeError {
  return new TypeError(`The store family ${JSON.stringify(pattern)} is not a pattern: ${why}`)
}

/** Compiles one declaration; a family's when `family` is given. */
function specOf(declaration: KeyDeclaration, family?: KeySpec['family']): KeySpec {
  return {
    declared: 'initial' in declaration,
    initial: declaration.initial,
    schema: declaration.schema,
    ids: compileIdPaths(declaration.ids),
    merge: declaration.merge === true,
    authorize: declaration.authorize,
    family,
  }
}

/**
 * Every declaration of an app, by exact key and by family. {@link StoreSpecs.of} resolves a key:
 * an exact key wins, else the first family in declaration order whose pattern matches it.
 */
export class StoreSpecs {
  readonly #exact = new Map<string, KeySpec>()
  readonly #families: KeySpec[] = []
  /** Whether any declaration has an `authorize` rule. */
  readonly rules: boolean

  constructor(declarations: Readonly<Record<string, KeyDeclaration>>) {
    for (const [key, declaration] of Object.entries(declarations)) {
      if (isFamily(key)) this.#families.push(specOf(declaration, compilePattern(key)))
      else this.#exact.set(key, specOf(declaration))
    }
    this.rules = [...this.#exact.values(), ...this.#families].some((spec) => spec.authorize !== undefined)
  }

  /** The declaration that covers `key`, if any: a Map lookup first, the patterns only when it misses. */
  of(key: string): KeySpec | undefined {
    return this.#exact.get(key) ?? this.#families.find((spec) => spec.family?.match.test(key))
  }

  /**
   * Whether the rule of `storeKey`'s declaration lets `principal` do `action`: true without a
   * rule, false (logged) when the rule throws.
   */
  allows(principal: { id: string } | undefined, storeKey: string, action: 'read' | 'write'): boolean {
    const spec = this.of(storeKey)
    const rule = spec?.authorize
    if (rule === undefined) return true
    const found = spec?.family?.match.exec(storeKey)
    // Own properties whatever the names (`__proto__` included), never the prototype.
    const params = Object.fromEntries(spec?.family?.names.map((name, i) => [name, found?.[i + 1] as string]) ?? [])
    try {
      return rule({ principal, params, action, storeKey }) === true
    } catch (error) {
      console.error(`[zuno] the authorize rule of ${JSON.stringify(storeKey)} threw; refusing to ${action} it`, error)
      return false
    }
  }
}
