/**
 * The name of the BroadcastChannel (and, with `:leader`, of the Web Lock) that the tabs of one
 * universe share. Tabs share a stream only when it carries exactly what each of them follows, so
 * the name holds the server's URL, the principal and the store filter: a tab that follows other
 * stores joins another group, with a leader and a stream of its own.
 */
export function tabChannelName(url: string, principal: string | undefined, stores: readonly string[] | undefined): string {
  const absolute = new URL(url, globalThis.location?.href ?? 'http://localhost').href
  // The same set in any order, with repeats, is the same filter; no filter at all follows every store.
  const filter = stores === undefined ? '*' : [...new Set(stores)].sort().join(',')
  return `zuno:${absolute}:${principal ?? ''}:${filter}`
}
