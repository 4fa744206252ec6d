/**
 * Preloaded (`--import`) into a demo process to play a machine where better-sqlite3's native
 * build failed: importing it throws, as a missing package does.
 */
import { register } from 'node:module'

const hook = `export async function resolve(specifier, context, next) {
  if (specifier === 'better-sqlite3') {
    throw Object.assign(new Error("Cannot find package 'better-sqlite3' (hidden by the test)"), { code: 'ERR_MODULE_NOT_FOUND' })
  }
  return next(specifier, context)
}`
register(`data:text/javascript,${encodeURIComponent(hook)}`)
