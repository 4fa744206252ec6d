/** The writer tag of a client id, computed synchronously: what the server stamps on each event. */
import { clientIdBytes, writerTagOfDigest } from './protocol'
import { sha256 } from './sha256'

const tags = new Map<string, string>()

/**
 * What the stream shows of the writer of an event: the first 96 bits of the SHA-256 of its client
 * id, in base64url. The writer recognises its own ops by it; nobody can make an id with a given
 * tag, so nobody can pass their ops off as someone else's.
 */
export function writerTag(clientId: string): string {
  let tag = tags.get(clientId)
  if (tag !== undefined) return tag
  tag = writerTagOfDigest(sha256(clientIdBytes(clientId)))
  if (tags.size >= 4096) tags.clear() // a cache of the ids seen lately, not a registry
  tags.set(clientId, tag)
  return tag
}

