/**
 * The README's demo commands as a user runs them: `pnpm demo` and `pnpm demo:client` from the
 * repository root, found through the same `PORT`, the client seeing a change made on the server.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from 'zuno'
import { afterAll, describe, expect, it } from 'vitest'
import { freePort } from '../../../packages/zuno/test/support/freePort'

const root = fileURLToPath(new URL('../../..', import.meta.url))
const dataDir = mkdtempSync(join(tmpdir(), 'zuno-demo-scripts-'))
const running: ChildProcess[] = []

/** Runs a root script through pnpm in a process group of its own, so stopping it stops what pnpm started. */
function runScript(script: string, env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn('npx', ['-y', 'pnpm@12.4.2', '--silent', script], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  running.push(child)
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  return { child, output: () => output }
}

async function waitFor(what: string, check: () => boolean, ms: number, output: () => string): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}; output:\n${output()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

afterAll(() => {
  for (const child of running) {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
    } catch {
      // gone already
    }
  }
  rmSync(dataDir, { recursive: true, force: true })
})

describe('the demo scripts', () => {
  it('pnpm demo and pnpm demo:client meet on the same PORT, and the client sees a server-side change', async () => {
    const port = String(await freePort())
    const demo = runScript('demo', { PORT: port, ZUNO_DATA_DIR: dataDir })
    await waitFor('the demo to listen', () => demo.output().includes(`Zuno demo on http://127.0.0.1:${port}`), 45_000, demo.output)
    expect(demo.output()).toContain(`data in ${dataDir}`)

    const client = runScript('demo:client', { PORT: port })
    // Not a terminal: the replica prints one status line per change.
    await waitFor('the client to sync', () => /status\s+connected.*\| counter\s+0/.test(client.output()), 30_000, client.output)

    const answer = await fetch(`http://127.0.0.1:${port}/zuno/sync`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) },
      body: JSON.stringify(await proposal(port)),
    })
    expect(answer.status).toBe(200)
    await waitFor('the client to see 41', () => /counter\s+41\b/.test(client.output()), 15_000, client.output)
  }, 120_000)
})

/** Sets the counter to 41 on the version the server has now, as a fresh client would. */
async function proposal(port: string): Promise<Record<string, unknown>> {
  const state = (await (await fetch(`http://127.0.0.1:${port}/zuno/state`, { headers: { [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) } })).json()) as {
    stores: Record<string, { version: number }>
    cursor: string
  }
  const { newClientId } = await import('zuno')
  return {
    storeKey: 'counter',
    baseVersion: state.stores.counter?.version ?? 0,
    epoch: state.cursor.split('-')[0],
    state: 41,
    clientId: newClientId(),
    opId: 1,
  }
}
