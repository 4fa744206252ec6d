// `pnpm check:size`: fails when a package tarball or the browser client outgrows its budget.
// Run after `pnpm build`; budgets are a little above the sizes measured when they were set, so
// that growth is a decision (raise the budget in the same commit) rather than an accident.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'
import { kB, packAll, root } from './pack.mjs'

const KiB = 1024

/**
 * Tarball budgets (gzip, as npm would download them). Measured 2026-11-27: 195.3, 4.6, 3.5, 6.1,
 * 19.7 KiB; zuno then grew to 210.6 KiB with the `zuno/testing` entry and TSDoc on every option,
 * and with actions (issue #15) to 255.9 KiB, zuno-react to 8.1 and zuno-redis to 24.1; with deltas
 * (issue #16: patches, their application, diffs and merges) zuno to 287.6 KiB and zuno-redis (the
 * patch in each Stream entry) to 25.5 KiB; with store families (issue #17) zuno to 299.2 KiB, and
 * with runtime subscriptions, revocation and deletion (issue #17: the control path, the instance
 * bus, tombstones, and the reviews' fixes) zuno to 338.8 KiB and zuno-redis (its pub/sub bus) to 27.8 KiB;
 * with the `zuno/sqlite` entry (issue #17: a storage read lazily; ESM, CJS, maps and types: 26 KiB)
 * and the universe's lazy stores (the hot set, reads brought on by the log, the review's fixes) zuno to 385.3 KiB;
 * with zuno-redis read lazily (issue #17: the READ and SCAN scripts, the store count in the commit
 * scripts, reads of every store brought on from the Stream) zuno-redis to 32.8 KiB; with the history
 * handed over after the start (`Storage.recent`, `EventLog.backfill`) zuno to 388.4 KiB and
 * zuno-redis to 33.6 KiB; with the store count asked again after entries of an earlier release
 * (`Storage.count`, the universe's correction as of the counted seq) zuno to 393.1 KiB and
 * zuno-redis (the COUNT script) to 33.9 KiB; with presence (issue #18: the server's rooms, ticks and
 * mirror across instances, the replica's rooms, the leader's sender, the tab messages; ESM, CJS,
 * maps and types; the reviews' and the demo's fixes) zuno to 442.0 KiB, and zuno-react (its presence hooks, a module of their own) to
 * 10.3 KiB (what a child asks before its parent joined waits for it); with presence's pacing and
 * the second review's fixes (numbered events, values checked as the server reads them, requests
 * split by size) zuno to 450.1 KiB.
 */
const tarballBudgets = {
  zuno: 452 * KiB,
  'zuno-express': 5.5 * KiB,
  'zuno-elysia': 4.5 * KiB,
  'zuno-react': 10.75 * KiB,
  'zuno-redis': 34.5 * KiB,
}

/**
 * What a browser app downloads at start, minified and gzipped. The goal for the client is 7 KiB; it
 * measured 11.0 KiB, and 10.4 KiB once the writer tags came from WebCrypto (Zuno's SHA-256 is now
 * loaded only where WebCrypto is missing); actions (the replay of a queue that mixes them with sets,
 * the commit event, their outbox entries) took it to 12.5 KiB, and retiring each as one change on
 * every path (answer ahead of the stream, a stream that follows some of its stores, other tabs) to
 * 13.1 KiB. Deltas (issue #16) took it to 15.0 KiB: making patches from structural sharing, applying
 * the stream's and the answers' patches (1.6 KiB for the patch module, with no library: the ones
 * that fit, JSON Patch and immer's, are larger and cannot address an array's items by id).
 * Store families (issue #17) took it to 15.5 KiB: compiling and checking patterns in `defineZuno`,
 * and each per-key lookup of the replica (initial state, schema, ids) falling back to a family.
 * Following stores at runtime (issue #17) took it to 17.8 KiB: the counted follows with their grace
 * period, the control requests, the reconnect that names what it holds, the `hello`, `followed` and
 * `revoked` events, tabs that follow through the leader and are watched by their Web Locks, and
 * deleted stores (refusing ops made before a deletion, restored ones too).
 * Presence (issue #18) took it to 20.2 KiB: a replica's rooms (handles, the others' list kept as one
 * array until it changes, broadcasts), the `presence` event, the tab messages that carry each tab's
 * presence through the leader and back, and the stream's `hello` asked for always; the leader's
 * sender (the tick, the heartbeat, the requests, the leaves sent beside a request in flight: 1.6 KiB)
 * loads only when a tab first joins a room. Its pacing and the second review's fixes took it to
 * 20.7 KiB (values checked for depth as the server reads them, numbered events, followers told when
 * the leader sent their events), 23.9 KiB with what loads on demand (the sender's per-tab and
 * per-stream pace, requests split by size, refusals for good).
 * docs/performance.md breaks it down.
 */
const bundles = [
  {
    name: 'browser client (zuno: connect)',
    code: `import { connect } from 'zuno'\nglobalThis.z = connect`,
    budget: 21 * KiB,
    goal: 7 * KiB,
    // With what loads on demand: code moved behind `import()` must not escape the budget.
    totalBudget: 24.25 * KiB,
  },
  {
    name: 'browser client with zuno-react hooks',
    code: `import { connect } from 'zuno'\nimport * as hooks from 'zuno-react'\nglobalThis.z = [connect, hooks]`,
    budget: 22.75 * KiB,
    totalBudget: 26 * KiB,
  },
]

/**
 * Bundles `code` for a browser as an app's bundler would: resolved through node_modules and the
 * exports maps, with dynamic imports split off. Returns the gzipped size of what loads at start (the
 * entry and the chunks it imports) and of what loads only when needed (the SHA-256 fallback, say).
 */
async function gzipBundleSizes(code) {
  const result = await build({
    stdin: { contents: code, resolveDir: join(root, 'packages/zuno-react'), loader: 'js' },
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    external: ['react', 'react-dom'],
    splitting: true,
    outdir: join(tmpdir(), 'zuno-size-bundle'),
    metafile: true,
    write: false,
    // tsup leaves bare imports of chunks that esbuild rightly drops (the package has no side effects).
    logLevel: 'error',
  })
  const outputs = result.metafile.outputs
  const entry = Object.keys(outputs).find((path) => outputs[path].entryPoint !== undefined)
  // What the entry imports statically loads with it; the rest is imported on demand.
  const atStart = new Set([entry])
  for (const path of atStart) for (const { path: imported, kind, external } of outputs[path].imports) if (kind === 'import-statement' && !external) atStart.add(imported)
  const sizes = { atStart: 0, onDemand: 0 }
  for (const file of result.outputFiles) {
    const path = relative(process.cwd(), file.path)
    sizes[atStart.has(path) ? 'atStart' : 'onDemand'] += gzipSync(file.contents, { level: 9 }).length
  }
  return sizes
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
for (const { name, code, budget, goal, totalBudget } of bundles) {
  const { atStart, onDemand } = await gzipBundleSizes(code)
  report(`${name}, min+gzip`, atStart, budget, goal)
  report('  with what loads only when needed', atStart + onDemand, totalBudget)
}

if (failures.length > 0) {
  console.error(`\nSize budget exceeded:\n${failures.map((f) => `  - ${f}`).join('\n')}`)
  process.exit(1)
}
