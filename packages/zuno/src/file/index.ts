/**
 * `zuno/file`: the embedded durable storage (Node.js and Bun).
 *
 * @module zuno/file
 */
export { createFileStorage } from './fileStorage'
export type { FileStorage, FileStorageOptions, FileSystem, FsyncPolicy } from './fileStorage'
