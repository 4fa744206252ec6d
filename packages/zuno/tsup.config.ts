import { packageBuild } from '../../tsup.shared'

// Shared code between the entry points goes to chunks, so `ZunoError` is one class everywhere.
export default packageBuild({ index: 'src/index.ts', server: 'src/server/index.ts', file: 'src/file/index.ts', testing: 'src/testing/index.ts' }, [], {
  splitting: true,
  treeshake: true,
})
