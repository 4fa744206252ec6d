/** `pnpm dev:api` and `pnpm start` run src/main.ts: it listens on PORT and stops cleanly on SIGTERM. */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'
import { freePort } from '../../../packages/zuno/test/support/freePort'

it('serves the API and Zuno on PORT, and exits with 0 on SIGTERM', async () => {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...process.env, PORT: String(port), NODE_ENV: 'development' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  try {
    await new Promise<void>((resolve, reject) => {
      let output = ''
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('Express on')) resolve()
      })
      child.once('exit', (code) => reject(new Error(`src/main.ts exited with ${code}`)))
    })
    const url = `http://127.0.0.1:${port}`
    expect(await (await fetch(`${url}/api/hello`)).json()).toEqual({ message: 'Hello from Express' })
    expect((await fetch(`${url}/zuno/state`)).status).toBe(200)
    // In development Express serves no page: Vite does.
    expect((await fetch(`${url}/`)).status).toBe(404)

    // An open stream must not hold the shutdown.
    const stream = await fetch(`${url}/zuno/sse`)
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/)
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    await stream.body?.cancel().catch(() => {})
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
})
