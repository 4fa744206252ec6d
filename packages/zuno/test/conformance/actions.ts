/**
 * The actions every conformance target's server defines (server-only: the suite speaks HTTP only).
 * Plain functions over the suite's declared stores, importable under Bun as well as Node.
 */
import { refuseAction, type ServerAction } from 'zuno'

export const conformanceActions: Record<string, ServerAction> = {
  /** counter += by. */
  increment: (tx, args) => {
    const { by } = (args ?? {}) as { by?: unknown }
    if (typeof by !== 'number') refuseAction('by must be a number')
    tx.set('counter', (n: unknown) => (n as number) + by)
  },
  /** Renames the profile and notes it in the todos: two stores, one change. */
  rename: (tx, args) => {
    const { name } = (args ?? {}) as { name?: unknown }
    if (typeof name !== 'string') refuseAction('name must be a string')
    tx.set('profile', { name })
    tx.set('todos', (todos: unknown) => [...(todos as unknown[]), `renamed to ${name}`])
  },
  /** Writes nothing. */
  noop: () => {},
}
