/**
 * Node children run compiled JavaScript, as a user's server does in production. Under the `tsx`
 * loader, every file outside `node_modules` is transformed on load, and the workspace's packages
 * resolve (through pnpm's links) to `packages/*`, outside it: Zuno's built code would then run
 * rewritten by the loader (with a name-keeping helper call for each closure made per request)
 * instead of as published.
 */
import { buildSync } from 'esbuild'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const benchRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const built = new Map<string, string>()

/** The path of `script` (under `bench/src`) compiled to one ES module, its packages left to Node to load. */
export function compiled(script: string): string {
  const cached = built.get(script)
  if (cached !== undefined) return cached
  const outfile = join(benchRoot, '.build', script.replace(/\.tsx?$/, '.mjs'))
  buildSync({
    entryPoints: [join(benchRoot, 'src', script)],
    outfile,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    jsx: 'automatic',
    // Not the workspace's tsconfig: its paths point the packages at their sources; a user's server gets their builds.
    tsconfigRaw: {},
    logLevel: 'error',
  })
  built.set(script, outfile)
  return outfile
}

