/** A random, time-ordered id of letters and digits; fine in URLs, headers and event ids. */
export function randomId(): string {
  const random = crypto.getRandomValues(new Uint32Array(2))
  return `${Date.now().toString(36)}${random[0]?.toString(36)}${random[1]?.toString(36)}`
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** `length` random base64url characters, 6 bits of entropy each. */
export function randomBase64url(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length))
  let text = ''
  for (const byte of bytes) text += BASE64URL[byte & 63]
  return text
}

/** A fresh client id: 228 random bits (see `CLIENT_ID_PATTERN`); what others see of it is its `writerTag`. */
export function newClientId(): string {
  return `${randomBase64url(16)}.${randomBase64url(22)}`
}
