import { defineWorkspace } from 'vitest/config'
import { alias } from './vitest.shared'

const project = (name: string, root: string, testTimeout = 20_000) => ({
  resolve: { alias },
  test: { name, root, include: ['test/**/*.test.ts'], testTimeout, hookTimeout: 20_000 },
})

export default defineWorkspace([
  project('zuno', './packages/zuno'),
  project('zuno-express', './packages/zuno-express'),
  project('examples', './examples/express', 60_000),
])
