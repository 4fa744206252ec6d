import type { StandardSchemaV1 } from '@standard-schema/spec'

/** A Standard Schema for objects whose `field` is a number: an action's arguments in the replica tests. */
export function numberField<K extends string>(field: K): StandardSchemaV1<unknown, Record<K, number>> {
  return {
    '~standard': {
      version: 1,
      vendor: 'test',
      validate: (value) =>
        typeof value === 'object' && value !== null && typeof (value as Record<string, unknown>)[field] === 'number'
          ? { value: value as Record<K, number> }
          : { issues: [{ message: `${field}: a number` }] },
    },
  }
}
