import { newClientId } from '../../src/id'
import { parseEventId } from '../../src/protocol'

/** The epoch a server is in, read off `GET /state` (which must be open to anonymous readers). */
export async function epochOf(url: string): Promise<string> {
  const { cursor } = (await (await fetch(`${url}/state`)).json()) as { cursor: string }
  return parseEventId(cursor)?.epoch ?? ''
}

/**
 * The JSON body of a protocol v2 proposal for tests that speak HTTP themselves: by default the
 * first op of a fresh client on `counter`; override any field.
 */
export function rawProposal(epoch: string, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ storeKey: 'counter', baseVersion: 0, epoch, state: 1, clientId: newClientId(), opId: 1, ...fields })
}
