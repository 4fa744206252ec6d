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
  /** For an exact key that takes the rest of its declaration from a family: that family's pattern, whose parameters its rule gets. */
  readonly pattern?: string | undefined
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
  /** A family's pattern and placeholder names; `undefined` for an exact key declared on its own. */
  readonly family: { readonly match: RegExp; readonly names: readonly string[] } | undefined
}

/** The declaration that covers a key, if any. */
export type SpecOf = (key: string) => KeySpec | undefined

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
  let valid = true
  // Odd parts are the names between braces; even parts the text around them, empty only at an end.
  pattern.split(/\{([^{}]*)\}/).forEach((part, i, parts) => {
    if (i % 2 === 0) {
      valid &&= part !== '' || i === 0 || i === parts.length - 1
      source += part.replace(/\./g, '\\.')
      sample += part
    } else {
      valid &&= /^[A-Za-z_$][\w$]*$/.test(part) && !names.includes(part)
      names.push(part)
      source += PLACEHOLDER
      sample += 'a'
    }
  })
  // With each placeholder as one character, a pattern is a store key: no stray brace, no other
  // character, a letter or digit first, 128 characters at most.
  if (!valid || names.length === 0 || !STORE_KEY_PATTERN.test(sample)) {
    throw new TypeError(`The store family ${JSON.stringify(pattern)} must be store key characters with {placeholders}: distinct identifiers, not side by side`)
  }
  return { match: new RegExp(`${source}$`), names }
}

/**
 * Every declaration of an app, compiled once, as the lookup of a key's: an exact key wins, else the
 * first family in declaration order whose pattern matches it. A Map lookup first, the patterns only
 * when it misses.
 */
export function storeSpecs(declarations: Readonly<Record<string, KeyDeclaration>>): SpecOf {
  const exact = new Map<string, KeySpec>()
  const families: KeySpec[] = []
  for (const [key, declaration] of Object.entries(declarations)) {
    const pattern = isFamily(key) ? key : declaration.pattern
    const family = pattern === undefined ? undefined : compilePattern(pattern)
    const spec: KeySpec = {
      declared: 'initial' in declaration,
      initial: declaration.initial,
      schema: declaration.schema,
      ids: compileIdPaths(declaration.ids),
      merge: declaration.merge === true,
      authorize: declaration.authorize,
      family,
    }
    if (pattern === key) families.push(spec)
    else exact.set(key, spec)
  }
  return (key) => exact.get(key) ?? families.find((spec) => spec.family?.match.test(key))
}
