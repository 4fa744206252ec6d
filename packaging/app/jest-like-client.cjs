// Run by the packaging test: a replica loaded the way Jest's CommonJS runtime loads modules, each
// file compiled with `vm` and no `import()` support, where WebCrypto is missing (`subtle: null`, as
// in Jest's jsdom environment). Zuno's own SHA-256 must then come without `import()`. Prints one
// JSON line: the version its write made.
const { readFileSync } = require('node:fs')
const { dirname, join } = require('node:path')
const vm = require('node:vm')

const zunoDist = dirname(require.resolve('zuno'))
const loaded = new Map()

/** Zuno's own files through `vm` (as Jest compiles them); everything else through Node's require. */
function load(file) {
  if (loaded.has(file)) return loaded.get(file).exports
  const module = { exports: {} }
  loaded.set(file, module)
  const compiled = vm.compileFunction(readFileSync(file, 'utf8'), ['exports', 'require', 'module', '__filename', '__dirname'], { filename: file })
  const localRequire = (id) => (id.startsWith('./') ? load(join(dirname(file), id)) : require(id))
  compiled(module.exports, localRequire, module, file, dirname(file))
  return module.exports
}

const { connect } = load(join(zunoDist, 'index.cjs'))
const { EventSource } = require('eventsource')

const replica = connect({ url: process.argv[2], EventSource, subtle: null, tabs: false })
replica
  .store('counter', 0)
  .set((n) => n + 1)
  .then((version) => {
    console.log(JSON.stringify({ version }))
    replica.close()
    process.exit(0)
  })
  .catch((error) => {
    console.error(error)
    process.exit(1)
  })
setTimeout(() => {
  console.error(`no answer; last error: ${replica.lastError.get()?.message}`)
  process.exit(1)
}, 10_000).unref()
