/**
 * The Zuno demo on Bun: the same stores, schemas, page and browser bundle as the Express demo
 * (examples/express), served by Elysia with the zuno-elysia plugin. Run with `pnpm demo:bun`.
 */
import { fileURLToPath } from 'node:url'
import { Elysia } from 'elysia'
import { createUniverse } from 'zuno/server'
import { zuno } from 'zuno-elysia'
import { renderDemoPage } from '../../express/src/render'
import { embeddedStorage } from '../../express/src/storage'
import { demoApp } from '../../express/src/stores'

/** The part of Bun's global used here (no @types/bun needed for one call). */
declare const Bun: { file(path: URL): Blob }

/** The browser bundle that the Express example builds (`pnpm build`). */
const bundle = Bun.file(new URL('../../express/dist/app.js', import.meta.url))

// Durable: SQLite (bun:sqlite) in ZUNO_DATA_DIR, chosen as in the Express demo (each demo has its own default folder).
const dataDir = process.env.ZUNO_DATA_DIR ?? fileURLToPath(new URL('../.data', import.meta.url))
const { storage, description } = await embeddedStorage(dataDir)
const universe = createUniverse({ app: demoApp, storage })
await universe.ready
const sync = zuno(universe)

const app = new Elysia()
  .use(sync)
  .get('/', async () => {
    const { status, html } = await renderDemoPage(universe)
    return new Response(html, { status, headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' } })
  })
  .get('/app.js', () => new Response(bundle, { headers: { 'content-type': 'text/javascript; charset=utf-8' } }))
  .listen({ port: Number(process.env.PORT ?? 3000), hostname: process.env.HOST ?? '127.0.0.1' })

console.log(`Zuno demo on http://${app.server?.hostname}:${app.server?.port} (Elysia on Bun; ${description}; open it in two tabs and click)`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void (async () => {
      await sync.shutdown()
      await app.stop()
      await universe.close()
      await storage.close()
      process.exit(0)
    })()
  })
}
