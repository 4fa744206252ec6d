/** Starts the Express server: the `dev:api` script in development, `start` (after `build`) in production. */
import { fileURLToPath } from 'node:url'
import { createApiServer } from './server'

const production = process.env.NODE_ENV === 'production'
const dist = fileURLToPath(new URL('../dist', import.meta.url))
const { server, universe, sync } = createApiServer(production ? { dist } : {})
await universe.ready

const port = Number(process.env.PORT ?? 3001)
const http = server.listen(port, '127.0.0.1', () => {
  console.log(`Express on http://127.0.0.1:${port}${production ? '' : " (open the page on Vite's dev server)"}`)
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void (async () => {
      await sync.shutdown() // ends the streams, so close() is not held open by them
      http.close()
      await universe.close()
    })()
  })
}
