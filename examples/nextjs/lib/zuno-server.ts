import { createFetchHandler, createUniverse } from 'zuno/server'
import { app } from './zuno'

function start() {
  const universe = createUniverse({ app })
  return { universe, handler: createFetchHandler(universe) }
}

// One universe per server process. Next gives the route handler and the pages each their own copy
// of this module, and in development runs it again on every edit: kept on globalThis, all share one.
const server = globalThis as typeof globalThis & { __zuno?: ReturnType<typeof start> }
export const { universe, handler } = (server.__zuno ??= start())
