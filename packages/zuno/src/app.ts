import type { StandardSchemaV1 } from '@standard-schema/spec'
import type { ActionContext, ActionSpec } from './action'
import type { IdPaths } from './patch'
import { ZunoError } from './errors'
import { ACTION_NAME_PATTERN } from './protocol'
import type { Schemas } from './schema'
import { isFamily, type SpecOf, storeSpecs } from './storeSpecs'

/**
 * Who may read or write a store, asked by the server for every request that reaches it (beside the
 * sync server's own `authorize`: both must allow). `params` are the parts of the key that the
 * family's placeholders matched (`{ id: '42' }` for `doc:42` in `doc:{id}`; `{}` for an exact key).
 * Synchronous, like the sync server's `authorize`; a rule that throws refuses. It runs only on the
 * server, but it is part of the app definition, which clients load too: keep secrets out of it.
 */
export type StoreRule<TParams = Record<string, string>> = (check: {
  /** Who asks, as the sync server's `authenticate` returned it; `undefined` when anonymous. */
  principal: ActionContext['principal']
  /** What the family's placeholders matched in the key, by name. */
  params: TParams
  /** Whether the principal reads the store (a snapshot, a stream, an action's read) or writes it. */
  action: 'read' | 'write'
  /** The store's key. */
  storeKey: string
}) => boolean

/**
 * One store of an app, or of a family of stores: the state it shows until it is written, the schema
 * every write must pass, if any, and who may read and write it.
 */
export interface StoreSpec<T, TParams = Record<string, string>> {
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
  /** Who may read and write the store (see {@link StoreRule}). Default: whoever the sync server's `authorize` allows. */
  authorize?(check: Parameters<StoreRule<TParams>>[0]): boolean
}

/**
 * The store keys a key of `stores` stands for: itself, or for a family's pattern every key it
 * matches, as a template literal type (`doc:{id}` stands for `` `doc:${string}` ``).
 */
export type KeysOfPattern<P extends string> = P extends `${infer Head}{${infer _Name}}${infer Tail}` ? `${Head}${string}${KeysOfPattern<Tail>}` : P

/** The names of a family pattern's placeholders: `'boardId' | 'cardId'` for `board:{boardId}:card:{cardId}`. */
export type ParamNamesOfPattern<P extends string> = P extends `${string}{${infer Name}}${infer Tail}` ? Name | ParamNamesOfPattern<Tail> : never

/** The parameters a family's rule receives: `{ id: string }` for `doc:{id}`; `{}` for an exact key. */
export type ParamsOfPattern<P extends string> = { [K in ParamNamesOfPattern<P>]: string }

/**
 * An app's stores, defined once and read by the server (`createUniverse({ app })`), the clients
 * (`connect({ app })`) and the React hooks (`createZunoHooks<typeof app>()`), so each store has one
 * type everywhere and a key that is not defined is a type error. Made by {@link defineZuno}.
 */
export interface ZunoApp<TStores extends Record<string, unknown> = Record<string, unknown>, TActions extends Record<string, unknown> = Record<string, unknown>> {
  /** Each store by key (a family by its pattern, such as `doc:{id}`): its initial state and, if it has one, its schema. */
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
 * from its `args` schema, and its transaction knows the stores.
 *
 * A key with `{name}` placeholders declares a family of stores, one per key its pattern matches,
 * all with the same spec: `'doc:{id}': { initial: { title: '' } }` declares `doc:42`, `doc:a-1`
 * and so on. A placeholder matches one or more characters of `[A-Za-z0-9._-]` (not `:`). A key
 * resolves to its exact declaration if it has one, else to the first family, in declaration order,
 * that matches it. A family's `authorize` rule receives what the placeholders matched as `params`.
 * Throws a `TypeError` for a pattern that is not one (a character a store key cannot have, an
 * empty or repeated placeholder name, two placeholders side by side).
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
      /** See {@link StoreSpec.authorize} (each key's rule is typed by its own pattern, below). */
      authorize?(check: never): boolean
    }
  >,
  TActions extends Record<string, unknown> = {},
>(definition: {
  stores: TSpecs & { [K in keyof TSpecs]: StoreSpec<StateOfSpec<TSpecs[K]>, ParamsOfPattern<K & string>> }
  actions?: { [K in keyof TActions]: ActionSpec<StatesOfSpecs<TSpecs>, TActions[K]> }
}): ZunoApp<StatesOfSpecs<TSpecs>, TActions> {
  const actions = definition.actions ?? {}
  for (const [name, spec] of Object.entries(actions)) {
    // Checked here, where it is written, rather than refused as `invalid_action` by the first client that calls it.
    if (!ACTION_NAME_PATTERN.test(name)) throw new TypeError(`Action name ${JSON.stringify(name)} must match ${ACTION_NAME_PATTERN}`)
    if (typeof (spec as { run?: unknown } | undefined)?.run !== 'function') throw new TypeError(`Action ${JSON.stringify(name)} has no run function`)
  }
  // Its patterns (and id paths) are compiled here, where they are written, to throw early.
  storeSpecs(definition.stores)
  return { stores: definition.stores, actions } as unknown as ZunoApp<StatesOfSpecs<TSpecs>, TActions>
}

/** The state type of each store spec, by the keys it stands for (a family's as a template literal type). */
export type StatesOfSpecs<TSpecs> = { [K in keyof TSpecs as KeysOfPattern<K & string>]: StateOfSpec<TSpecs[K]> }

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
 * schemas, for its exact keys; and every declaration, families included, as `specs`. Throws a
 * `TypeError` if `schemas` came beside `app` (they would be dropped silently), and `invalid_state`
 * if a state (a family's initial state too) does not pass its store's schema: a store must not
 * start in a state no write could give it (only schemas that validate synchronously are checked here).
 */
export function appSetup(
  app: ZunoApp,
  overrides: Record<string, unknown> | undefined,
  schemasBeside: unknown,
): { states: Record<string, unknown>; schemas: Schemas; ids: Record<string, IdPaths>; merge: string[]; specs: SpecOf } {
  if (schemasBeside !== undefined) throw new TypeError('Pass the schemas in the app definition (defineZuno), not in `schemas` beside `app`')
  const states: Record<string, unknown> = {}
  const schemas: Schemas = {}
  const ids: Record<string, IdPaths> = {}
  const merge: string[] = []
  const checked: Array<[string, unknown, StandardSchemaV1 | undefined]> = []
  for (const [key, spec] of Object.entries(app.stores)) {
    // A family is no store of its own: its keys are resolved through `specs`.
    if (isFamily(key)) {
      checked.push([key, spec.initial, spec.schema])
      continue
    }
    states[key] = spec.initial
    if (spec.schema !== undefined) schemas[key] = spec.schema
    if (spec.ids !== undefined) ids[key] = spec.ids
    if (spec.merge === true) merge.push(key)
  }
  Object.assign(states, overrides)
  const specs = storeSpecs(app.stores)
  // An override of a family's store (`doc:1`) passes its family's schema.
  for (const [key, state] of Object.entries(states)) checked.push([key, state, specs(key)?.schema])
  for (const [key, state, schema] of checked) {
    if (schema === undefined) continue
    const result = schema['~standard'].validate(state)
    if (result instanceof Promise || result.issues === undefined) continue
    const issues = result.issues.map((issue) => ({ message: issue.message }))
    throw new ZunoError('invalid_state', `The initial state of ${JSON.stringify(key)} does not match its schema`, { issues })
  }
  return { states, schemas, ids, merge, specs }
}
