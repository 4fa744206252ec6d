import { fileURLToPath } from 'node:url'

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

/** Tests import the packages' sources, so they never run against a stale build. */
export const alias = {
  'zuno/server': here('./packages/zuno/src/server/index.ts'),
  'zuno/file': here('./packages/zuno/src/file/index.ts'),
  'zuno/sqlite': here('./packages/zuno/src/sqlite/index.ts'),
  'zuno/testing': here('./packages/zuno/src/testing/index.ts'),
  'zuno-express': here('./packages/zuno-express/src/index.ts'),
  'zuno-react': here('./packages/zuno-react/src/index.ts'),
  'zuno-elysia': here('./packages/zuno-elysia/src/index.ts'),
  'zuno-redis': here('./packages/zuno-redis/src/index.ts'),
  zuno: here('./packages/zuno/src/index.ts'),
}

/** The same, with React and react-dom taken from the React 18 fixture package. */
export const react18Alias = [
  { find: /^react(\/.*)?$/, replacement: `${here('./packages/zuno-react/react18/node_modules/react')}$1` },
  { find: /^react-dom(\/.*)?$/, replacement: `${here('./packages/zuno-react/react18/node_modules/react-dom')}$1` },
  ...Object.entries(alias).map(([find, replacement]) => ({ find, replacement })),
]
