import type { StandardSchemaV1 } from '@standard-schema/spec'
import type { ActionSpec } from './action'
import type { IdPaths } from './patch'
import { ZunoError } from './errors'
import { ACTION_NAME_PATTERN } from './protocol'
import type { Schemas } from './schema'

/** One store of an app: the state it shows until it is written, and the schema every write must pass, if any. */
export interface StoreSpec<T> {
  /** The store's state at version 0, on the server and on every client until the server's state arrives. */
  readonly initial: T
  /** Checked on the client before a write is proposed and on the server before it is accepted; its output is what is stored. */
  readonly schema?: StandardSchemaV1<unknown, T>
  /**
   * The array paths whose items are objects identified by a key, such as `{ '': 'id' }` for a list
   * of todos or `{ '/cards': 'id' }`: patches address those items by id, so an edit or an insert
   * does not rewrite the list, and (with `merge`) edits of two items do not conflict.
   */
  readonly ids?: IdPaths
  /**
   * Merge disjoint edits: a patch proposed on a stale version is accepted when nothing changed since
   * touched what it touches, instead of a 409 (see `docs/consistency.md#merging`). Default: false.
   */
  readonly merge?: boolean
}

/**
 * An app's stores, defined once and read by the server (`createUniverse({ app })`), the clients
 * (`connect({ app })`) and the React hooks (`createZunoHooks<typeof app>()`), so each store has one
 * type everywhere and a key that is not defined is a type error. Made by {@link defineZuno}.
 */
export interface ZunoApp<TStores extends Record<string, unknown> = Record<string, unknown>, TActions extends Record<string, unknown> = Record<string, unknown>> {
  /** Each store by key: its initial state and, if it has one, its schema. */
  readonly stores: { readonly [K in keyof TStores]: StoreSpec<TStores[K]> }
  /** Each action by name: its arguments' schema and its mutation (see `docs/actions.md`). */
  readonly actions: { readonly [K in keyof TActions]: ActionSpec<TStores, TActions[K]> }
}

/** The state type of each store of an app: what `store(key).get()` returns. */
export type StatesOfApp<TApp> = TApp extends ZunoApp<infer TStores, infer _TActions> ? TStores : never

/** The argument type of each action of an app: what `act(name, args)` takes. */
export type ActionsOfApp<TApp> = TApp extends ZunoApp<infer _TStores, infer TActions> ? TActions : never

/**
 * Defines an app's stores and actions once, for the server and the clients alike:
 *
 * ```ts
 * export const app = defineZuno({
 *   stores: {
 *     counter: { initial: 0, schema: v.pipe(v.number(), v.minValue(0)) },
 *     todos: { initial: [] as Todo[] },
 *   },
 *   actions: {
 *     increment: {
 *       args: v.object({ by: v.number() }),
 *       run: (tx, { by }) => tx.set('counter', (n) => n + by),
 *     },
 *   },
 * })
 * ```
 *
 * Each store's type comes from its schema, else from its initial state; each action's arguments
 * from its `args` schema, and its transaction knows the stores. Store families will join `stores`
 * in the same definition.
 */
export function defineZuno<
  TSpecs extends Record<
    string,
    {
      /** See {@link StoreSpec.initial}. */
      readonly initial: unknown
      /** See {@link StoreSpec.schema}. */
      readonly schema?: StandardSchemaV1
      /** See {@link StoreSpec.ids}. */
      readonly ids?: IdPaths
      /** See {@link StoreSpec.merge}. */
      readonly merge?: boolean
    }
  >,
  TActions extends Record<string, unknown> = {},
>(definition: {
  stores: TSpecs & { [K in keyof TSpecs]: StoreSpec<StateOfSpec<TSpecs[K]>> }
  actions?: { [K in keyof TActions]: ActionSpec<StatesOfSpecs<TSpecs>, TActions[K]> }
}): ZunoApp<StatesOfSpecs<TSpecs>, TActions> {
  const actions = definition.actions ?? {}
  for (const [name, spec] of Object.entries(actions)) {
    // Checked here, where it is written, rather than refused as `invalid_action` by the first client that calls it.
    if (!ACTION_NAME_PATTERN.test(name)) throw new TypeError(`Action name ${JSON.stringify(name)} must match ${ACTION_NAME_PATTERN}`)
    if (typeof (spec as { run?: unknown } | undefined)?.run !== 'function') throw new TypeError(`Action ${JSON.stringify(name)} has no run function`)
  }
  return { stores: definition.stores, actions } as unknown as ZunoApp<StatesOfSpecs<TSpecs>, TActions>
}

/** The state type of each store spec. */
export type StatesOfSpecs<TSpecs> = { [K in keyof TSpecs]: StateOfSpec<TSpecs[K]> }

/** A store's state type: its schema's output if it has one (its initial state must then be one), else its initial state's type. */
export type StateOfSpec<TSpec> = TSpec extends {
  /** The store's schema, whose output is its state type. */
  readonly schema: StandardSchemaV1<unknown, infer TOutput>
}
  ? TOutput
  : TSpec extends {
        /** The store's initial state, whose type is its state type when it has no schema. */
        readonly initial: infer TInitial
      }
    ? TInitial
    : never

/**
 * What a universe made from `app` starts with, for the server and a client alike: the app's
 * initial states with `overrides` over them, each checked against its schema, and the app's
 * schemas. Throws a `TypeError` if `schemas` came beside `app` (they would be dropped silently),
 * and `invalid_state` if a state does not pass its store's schema: a store must not start in a
 * state no write could give it (only schemas that validate synchronously are checked here).
 */
export function appSetup(
  app: ZunoApp,
  overrides: Record<string, unknown> | undefined,
  schemasBeside: unknown,
): { states: Record<string, unknown>; schemas: Schemas; ids: Record<string, IdPaths>; merge: string[] } {
  if (schemasBeside !== undefined) throw new TypeError('Pass the schemas in the app definition (defineZuno), not in `schemas` beside `app`')
  const states: Record<string, unknown> = {}
  const schemas: Schemas = {}
  const ids: Record<string, IdPaths> = {}
  const merge: string[] = []
  for (const [key, spec] of Object.entries(app.stores)) {
    states[key] = spec.initial
    if (spec.schema !== undefined) schemas[key] = spec.schema
    if (spec.ids !== undefined) ids[key] = spec.ids
    if (spec.merge === true) merge.push(key)
  }
  Object.assign(states, overrides)
  for (const [key, state] of Object.entries(states)) {
    const schema = Object.hasOwn(schemas, key) ? schemas[key] : undefined
    if (schema === undefined) continue
    const result = schema['~standard'].validate(state)
    if (result instanceof Promise || result.issues === undefined) continue
    const issues = result.issues.map((issue) => ({ message: issue.message }))
    throw new ZunoError('invalid_state', `The initial state of ${JSON.stringify(key)} does not match its schema`, { issues })
  }
  return { states, schemas, ids, merge }
}
