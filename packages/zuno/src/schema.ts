import type { StandardSchemaV1 } from '@standard-schema/spec'
import { ZunoError } from './errors'
import type { SchemaIssue } from './protocol'

/** Per-store schemas, in any Standard Schema library (zod, valibot, arktype, …). */
export type Schemas = Record<string, StandardSchemaV1>

/** The state types the schemas describe: what `store(key).get()` returns. */
export type StatesOf<S extends Schemas> = { [K in keyof S]: StandardSchemaV1.InferOutput<S[K]> }

/** The schema of `storeKey`, if any (own keys only: `constructor` is not a schema). */
export function schemaFor(schemas: Schemas | undefined, storeKey: string): StandardSchemaV1 | undefined {
  return schemas !== undefined && Object.hasOwn(schemas, storeKey) ? schemas[storeKey] : undefined
}

/** Validates `state`; resolves with the schema's output, or throws `invalid_state` with the issues. */
export async function validateState(schema: StandardSchemaV1, storeKey: string, state: unknown): Promise<unknown> {
  const result = await schema['~standard'].validate(state)
  if (result.issues === undefined) return result.value
  const issues: SchemaIssue[] = result.issues.map((issue) => ({
    message: issue.message,
    ...(issue.path ? { path: issue.path.map((part) => pathKey(typeof part === 'object' ? part.key : part)) } : {}),
  }))
  throw new ZunoError('invalid_state', `The state of ${JSON.stringify(storeKey)} does not match its schema`, { issues })
}

function pathKey(key: PropertyKey): string | number {
  return typeof key === 'symbol' ? key.toString() : key
}
