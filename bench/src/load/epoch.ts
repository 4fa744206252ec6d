import { parseEventId } from 'zuno'

/**
 * The epoch a Zuno server is in, which its proposals must name; a baseline has no `/zuno/state`
 * and ignores the field, so any valid epoch does there.
 */
export async function epochAt(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/zuno/state`).catch(() => undefined)
  if (response?.ok !== true) return 'baseline'
  const { cursor } = (await response.json()) as { cursor: string }
  return parseEventId(cursor)?.epoch ?? 'baseline'
}
