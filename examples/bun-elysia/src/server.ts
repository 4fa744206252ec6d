/** The app on Bun: Elysia serves the page, which Bun bundles from index.html, and Zuno's endpoints. */
import { Elysia } from 'elysia'
import { createUniverse } from 'zuno/server'
import { zuno } from 'zuno-elysia'
import { app } from './app'
import page from './index.html'

const universe = createUniverse({ app })
await universe.ready
const sync = zuno(universe) // GET /zuno/sse, POST /zuno/sync and GET /zuno/state

const server = new Elysia()
  .use(sync)
  .get('/', page)
  .listen({ hostname: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 3000) })

console.log(`Listening on http://${server.server?.hostname}:${server.server?.port}`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void (async () => {
      await sync.shutdown() // ends the streams, so stop() is not held open by them
      await server.stop()
      await universe.close()
      process.exit(0)
    })()
  })
}
