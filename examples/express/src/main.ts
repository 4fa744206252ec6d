import { startDemo } from './demoServer'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'
const demo = await startDemo(port, host)
console.log(`Zuno demo on ${demo.url} (open it in two tabs and click)`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void demo.close().then(() => process.exit(0))
  })
}
