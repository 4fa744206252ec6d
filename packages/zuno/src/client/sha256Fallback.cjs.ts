/**
 * The CommonJS build's `loadSha256`: a static import. CommonJS means Node.js or Jest, never a browser
 * bundle, and Jest's CommonJS runtime refuses `import()` of a file.
 */
import { sha256 } from '../sha256'

export function loadSha256(): Promise<(bytes: Uint8Array) => Uint8Array> {
  return Promise.resolve(sha256)
}
