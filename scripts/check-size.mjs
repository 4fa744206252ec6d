// `pnpm check:size`: fails when a package tarball or the browser client outgrows its budget.
// Run after `pnpm build`; budgets are a little above the sizes measured when they were set, so
// that growth is a decision (raise the budget in the same commit) rather than an accident.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'
import { kB, packAll, root } from './pack.mjs'

const KiB = 1024

/**
 * Tarball budgets (gzip, as npm would download them). Measured 2026-11-27: 195.3, 4.6, 3.5, 6.1,
 * 19.7 KiB; zuno then grew to 210.6 KiB with the `zuno/testing` entry and TSDoc on every option.
 */
const tarballBudgets = {
  zuno: 225 * KiB,
  'zuno-express': 5.5 * KiB,
  'zuno-elysia': 4.5 * KiB,
  'zuno-react': 7 * KiB,
  'zuno-redis': 22 * KiB,
}

/**
 * What a browser app downloads, minified and gzipped. The goal for the client is 7 KiB; it measures
 * 11.0 KiB today (the replica, its op queue and tab relay, sha256 for client ids), so the budget
 * holds it where it is until that work is done.
 */
const bundles = [
  { name: 'browser client (zuno: connect)', code: `import { connect } from 'zuno'\nglobalThis.z = connect`, budget: 11.5 * KiB, goal: 7 * KiB },
  {
    name: 'browser client with zuno-react hooks',
    code: `import { connect } from 'zuno'\nimport * as hooks from 'zuno-react'\nglobalThis.z = [connect, hooks]`,
    budget: 12.5 * KiB,
  },
]

/** Bundles `code` for a browser as an app would: resolved through node_modules and the exports maps. */
async function gzipBundleSize(code) {
  const result = await build({
    stdin: { contents: code, resolveDir: join(root, 'packages/zuno-react'), loader: 'js' },
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    external: ['react', 'react-dom'],
    write: false,
  })
  return gzipSync(result.outputFiles[0].contents, { level: 9 }).length
}

const failures = []
const report = (name, bytes, budget, goal) => {
  const over = bytes > budget
  const note = goal !== undefined && bytes > goal ? `  (goal ${kB(goal)})` : ''
  console.log(`${over ? 'FAIL' : 'ok  '} ${name.padEnd(52)} ${kB(bytes).padStart(9)} of ${kB(budget)}${note}`)
  if (over) failures.push(`${name} is ${kB(bytes)}, over its budget of ${kB(budget)}`)
}

const dest = mkdtempSync(join(tmpdir(), 'zuno-size-'))
try {
  for (const { name, bytes } of packAll(dest)) {
    const budget = tarballBudgets[name]
    if (budget === undefined) failures.push(`${name} has no tarball budget: add one to scripts/check-size.mjs`)
    else report(`${name} tarball`, bytes, budget)
  }
} finally {
  rmSync(dest, { recursive: true, force: true })
}
for (const { name, code, budget, goal } of bundles) report(`${name}, min+gzip`, await gzipBundleSize(code), budget, goal)

if (failures.length > 0) {
  console.error(`\nSize budget exceeded:\n${failures.map((f) => `  - ${f}`).join('\n')}`)
  process.exit(1)
}
