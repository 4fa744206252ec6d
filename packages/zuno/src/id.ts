/** A random, time-ordered id of letters and digits; fine in URLs, headers and event ids. */
export function randomId(): string {
  const random = crypto.getRandomValues(new Uint32Array(2))
  return `${Date.now().toString(36)}${random[0]?.toString(36)}${random[1]?.toString(36)}`
}
