/**
 * The format of the messages tabs exchange (see `TabMessage`). Tabs of two builds whose messages
 * differ must not share a channel (an older tab would read half of a newer one's messages): each
 * group elects its own leader. 2: a `pending` message may carry `more` stores, shown together.
 * 3: a relayed change may carry a `patch` instead of its `state`. 4: tabs follow stores at runtime
 * through the leader (`follows`, `followed`, `revoked`).
 */
const TAB_FORMAT = 4

/**
 * The name of the BroadcastChannel (and, with `:leader`, of the Web Lock) that the tabs of one
 * universe share. Tabs share a stream only when it carries exactly what each of them follows, so
 * the name holds the server's URL, the principal and the store filter: a tab that follows other
 * stores joins another group, with a leader and a stream of its own. It holds the message format
 * too ({@link TAB_FORMAT}).
 */
export function tabChannelName(url: string, principal: string | undefined, stores: readonly string[] | undefined): string {
  const absolute = new URL(url, globalThis.location?.href ?? 'http://localhost').href
  // The same set in any order, with repeats, is the same filter; no filter at all follows every store.
  const filter = stores === undefined ? '*' : [...new Set(stores)].sort().join(',')
  return `zuno${TAB_FORMAT}:${absolute}:${principal ?? ''}:${filter}`
}
