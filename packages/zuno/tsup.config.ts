import { fileURLToPath } from 'node:url'
import type { Plugin } from 'esbuild'
import { packageBuild } from '../../tsup.shared'

/**
 * The CommonJS build takes `sha256Fallback.cjs.ts` for `sha256Fallback.ts`: a static import of
 * Zuno's SHA-256 instead of `import()`, which Jest's CommonJS runtime refuses.
 */
const staticSha256InCommonJs: Plugin = {
  name: 'static-sha256-in-cjs',
  setup(build) {
    // tsup builds CommonJS with splitting as ESM and converts it afterwards; its define says which.
    if (build.initialOptions.define?.TSUP_FORMAT !== '"cjs"') return
    build.onResolve({ filter: /\/sha256Fallback$/ }, () => ({ path: fileURLToPath(new URL('./src/client/sha256Fallback.cjs.ts', import.meta.url)) }))
  },
}

// Shared code between the entry points goes to chunks, so `ZunoError` is one class everywhere.
export default packageBuild({ index: 'src/index.ts', server: 'src/server/index.ts', file: 'src/file/index.ts', sqlite: 'src/sqlite/index.ts', testing: 'src/testing/index.ts' }, [], {
  splitting: true,
  treeshake: true,
  esbuildPlugins: [staticSha256InCommonJs],
})
