import type { Outbox, OutboxEntry } from '../../src/index'

/** An outbox kept in a Map, as IndexedDB would keep it across a "reload" (entries are copied in). */
export function memoryOutbox(): { outbox: Outbox; entries: Map<string, OutboxEntry> } {
  const entries = new Map<string, OutboxEntry>()
  const outbox: Outbox = {
    load: async () => [...entries.values()],
    put: async (entry) => {
      entries.set(`${entry.clientId}/${entry.opId}`, structuredClone(entry))
    },
    delete: async (clientId, opId) => {
      entries.delete(`${clientId}/${opId}`)
    },
  }
  return { outbox, entries }
}
