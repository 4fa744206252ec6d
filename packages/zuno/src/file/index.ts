/** `zuno/file`: the embedded durable storage (Node.js and Bun). */
export { createFileStorage } from './fileStorage'
export type { FileStorageOptions, FsyncPolicy } from './fileStorage'
