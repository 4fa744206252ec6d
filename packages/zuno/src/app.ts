import type { StandardSchemaV1 } from '@standard-schema/spec'
import type { Schemas } from './schema'

/** One store of an app: the state it shows until it is written, and the schema every write must pass, if any. */
export interface StoreSpec<T> {
  /** The store's state at version 0, on the server and on every client until the server's state arrives. */
  readonly initial: T
  /** Checked on the client before a write is proposed and on the server before it is accepted; its output is what is stored. */
  readonly schema?: StandardSchemaV1<unknown, T>
}

/**
 * An app's stores, defined once and read by the server (`createUniverse({ app })`), the clients
 * (`connect({ app })`) and the React hooks (`createZunoHooks<typeof app>()`), so each store has one
 * type everywhere and a key that is not defined is a type error. Made by {@link defineZuno}.
 */
export interface ZunoApp<TStores extends Record<string, unknown> = Record<string, unknown>> {
  /** Each store by key: its initial state and, if it has one, its schema. */
  readonly stores: { readonly [K in keyof TStores]: StoreSpec<TStores[K]> }
}

/** The state type of each store of an app: what `store(key).get()` returns. */
export type StatesOfApp<TApp> = TApp extends ZunoApp<infer TStores> ? TStores : never

/**
 * Defines an app's stores once, for the server and the clients alike:
 *
 * ```ts
 * export const app = defineZuno({
 *   stores: {
 *     counter: { initial: 0, schema: v.pipe(v.number(), v.minValue(0)) },
 *     todos: { initial: [] as Todo[] },
 *   },
 * })
 * ```
 *
 * Each store's type comes from its schema, else from its initial state. Store families and
 * actions will join `stores` in the same definition.
 */
export function defineZuno<TStores extends Record<string, unknown>>(definition: {
  stores: { [K in keyof TStores]: StoreSpec<TStores[K]> }
}): ZunoApp<TStores> {
  return { stores: definition.stores }
}

/** The initial state of each store of `app`. */
export function appInitials(app: ZunoApp): Record<string, unknown> {
  const initials: Record<string, unknown> = {}
  for (const key of Object.keys(app.stores)) initials[key] = app.stores[key]?.initial
  return initials
}

/** The schemas of the stores of `app` that have one. */
export function appSchemas(app: ZunoApp): Schemas {
  const schemas: Schemas = {}
  for (const key of Object.keys(app.stores)) {
    const schema = app.stores[key]?.schema
    if (schema !== undefined) schemas[key] = schema
  }
  return schemas
}
