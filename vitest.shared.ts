import { fileURLToPath } from 'node:url'

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))

/** Tests import the packages' sources, so they never run against a stale build. */
export const alias = {
  'zuno/server': here('./packages/zuno/src/server/index.ts'),
  'zuno-express': here('./packages/zuno-express/src/index.ts'),
  zuno: here('./packages/zuno/src/index.ts'),
}
