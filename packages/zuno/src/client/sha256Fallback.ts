/**
 * Zuno's own SHA-256, for where WebCrypto is missing. Loaded with `import()`, so a browser bundle
 * keeps it in a chunk of its own that only such a page downloads. The CommonJS build has
 * `sha256Fallback.cjs.ts` instead (see tsup.config.ts).
 */
export function loadSha256(): Promise<(bytes: Uint8Array) => Uint8Array> {
  return import('../sha256').then((module) => module.sha256)
}
