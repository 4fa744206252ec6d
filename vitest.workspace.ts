import { defineWorkspace } from 'vitest/config'
import { alias, react18Alias } from './vitest.shared'

const project = (name: string, root: string, testTimeout = 20_000) => ({
  resolve: { alias },
  test: { name, root, include: ['test/**/*.test.ts'], testTimeout, hookTimeout: 20_000 },
})

const reactProject = (name: string, resolveAlias: typeof alias | typeof react18Alias) => ({
  resolve: { alias: resolveAlias },
  test: {
    name,
    root: './packages/zuno-react',
    include: ['test/**/*.test.tsx'],
    environment: 'happy-dom',
    // The hooks talk to real servers on 127.0.0.1 from a page that is not on that origin.
    environmentOptions: { happyDOM: { url: 'http://localhost/', settings: { fetch: { disableSameOriginPolicy: true } } } },
    testTimeout: 20_000,
  },
})

export default defineWorkspace([
  project('zuno', './packages/zuno'),
  project('zuno-express', './packages/zuno-express'),
  project('zuno-elysia', './packages/zuno-elysia', 30_000),
  project('zuno-redis', './packages/zuno-redis', 60_000),
  reactProject('zuno-react (React 19)', alias),
  reactProject('zuno-react (React 18)', react18Alias),
  project('examples', './examples/express', 60_000),
  project('examples-elysia', './examples/elysia', 60_000),
  project('examples-vite-express', './examples/vite-express', 60_000),
  project('examples-bun-elysia', './examples/bun-elysia', 60_000),
  // Its beforeAll runs `next build` (which type-checks the example), then `next start`. Like
  // packaging, it runs after the timing-sensitive projects (groupOrder 1): the build takes the CPU.
  {
    resolve: { alias },
    test: {
      name: 'examples-nextjs',
      root: './examples/nextjs',
      include: ['test/**/*.test.ts'],
      testTimeout: 60_000,
      hookTimeout: 300_000,
      sequence: { groupOrder: 1 },
    },
  },
  // The API reference: typedoc over every package entry, checked against the built declarations.
  project('docs', '.', 120_000),
  // Packs, installs from the registry and type-checks in a temp app. It runs after the others
  // (groupOrder 1), so its npm and tsc work does not take the CPU from their timing-sensitive tests.
  {
    test: {
      name: 'packaging',
      root: './packaging',
      include: ['test/**/*.test.ts'],
      testTimeout: 120_000,
      hookTimeout: 300_000,
      sequence: { groupOrder: 1 },
    },
  },
])
