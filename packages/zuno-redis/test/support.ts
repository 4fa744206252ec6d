/** Shared helpers of the zuno-redis tests: namespaces, server processes, raw protocol clients. */
import { type ChildProcess, spawn } from 'node:child_process'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { afterEach } from 'vitest'
import { newClientId, parseEventId, type ZunoApp } from 'zuno'
import { createNodeHandler, createUniverse, type NodeHandlerOptions, type UniverseOptions } from 'zuno/server'
import { createRedisStorage, type RedisStorageOptions } from '../src/index'

export const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A namespace of its own per test (on `url`'s db), deleted afterwards. */
export function namespace(url = 'redis://127.0.0.1:6379'): string {
  const ns = `zuno-test-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
  cleanups.push(async () => {
    // A server of the test's own may be gone already.
    const redis = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null })
    redis.on('error', () => {})
    try {
      const keys = await redis.keys(`{${ns}}:*`)
      if (keys.length > 0) await redis.del(...keys)
    } catch {}
    redis.disconnect()
  })
  return ns
}

/** A universe on its own Redis storage (an instance in this process); both closed after the test. */
export function openUniverse(ns: string, options: Partial<RedisStorageOptions> = {}, universe: UniverseOptions = { stores: { counter: 0 } }) {
  const storage = createRedisStorage({ namespace: ns, ...options })
  const opened = createUniverse({ ...universe, storage })
  cleanups.push(async () => {
    await opened.close()
    await storage.close()
  })
  return Object.assign(opened, { storage })
}

/** Serves `universe` over HTTP on 127.0.0.1 with core's node handler; the server closed after the test. */
export async function serveOverHttp(universe: Parameters<typeof createNodeHandler>[0], options: NodeHandlerOptions = {}): Promise<{ url: string; port: number }> {
  const handler = createNodeHandler(universe, options)
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(async () => {
    handler.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const { port } = server.address() as { port: number }
  return { url: `http://127.0.0.1:${port}/zuno`, port }
}

/** An instance of `app` on the Redis namespace `ns`, served over HTTP on 127.0.0.1 by core's node handler; closed after the test. */
export async function serveApp<TStores extends Record<string, unknown>, TActions extends Record<string, unknown>>(ns: string, app: ZunoApp<TStores, TActions>) {
  const storage = createRedisStorage({ namespace: ns })
  const universe = createUniverse({ app, storage })
  await universe.ready
  // Closed after its server (cleanups run last first).
  cleanups.push(async () => {
    await universe.close()
    await storage.close()
  })
  const { url } = await serveOverHttp(universe)
  return { universe, url }
}

/** A Redis connection closed after the test. */
export function redisClient(url = 'redis://127.0.0.1:6379'): Redis {
  const redis = new Redis(url)
  cleanups.push(() => redis.quit().catch(() => {}))
  return redis
}

const fixture = fileURLToPath(new URL('./fixtures/instance.ts', import.meta.url))

export interface Instance {
  port: number
  child: ChildProcess
  url: string
  output: string[]
}

/** Starts one server process on Redis; resolves with its port once it has loaded. */
export function startInstance(ns: string, env: Record<string, string> = {}): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, NAMESPACE: ns, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  cleanups.push(() => child.kill('SIGKILL'))
  const output: string[] = []
  child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()))
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      const port = /READY (\d+)/.exec(chunk.toString())?.[1]
      if (port) resolve({ port: Number(port), child, url: `http://127.0.0.1:${port}/zuno`, output })
    })
    child.once('exit', (code) => reject(new Error(`instance exited with ${code}: ${output.join('')}`)))
  })
}

/**
 * `GET /state`: every store and the cursor (`<epoch>-<seq>`). A 503 (the instance reloading after a
 * new epoch: stores are read from Redis, which it no longer follows until then) is asked again, as a client would.
 */
export async function state(url: string): Promise<{ stores: Record<string, { version: number; state: unknown }>; cursor: string; epoch: string }> {
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(`${url}/state`)
    if (response.status === 503 && attempt < 100) {
      await response.body?.cancel()
      await sleep(50)
      continue
    }
    const body = (await response.json()) as { stores: Record<string, { version: number; state: unknown }>; cursor: string }
    return { ...body, epoch: parseEventId(body.cursor)?.epoch as string }
  }
}

export interface Answer {
  status: number
  body: Record<string, unknown>
}

/** A raw `POST /sync`. */
export async function post(url: string, body: Record<string, unknown>, user?: string): Promise<Answer> {
  const response = await fetch(`${url}/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(user === undefined ? {} : { 'x-user': user }) },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

/**
 * A protocol client in a few lines: a v2 identity, contiguous opIds, compare-and-set retried on
 * conflicts (same opId, new base), a fresh identity on `unknown_client`, the new epoch's truth
 * on `epoch_changed`.
 */
export class RawClient {
  clientId = newClientId()
  opId = 0
  epoch = ''
  known = new Map<string, { version: number; state: unknown }>()
  /** Every 200 answer, with the request and when it was sent. */
  readonly acks: Array<{ sentAt: number; request: Record<string, unknown>; body: Record<string, unknown> }> = []

  constructor(
    public url: string,
    readonly user?: string,
  ) {}

  async refresh(): Promise<void> {
    const { stores, epoch } = await state(this.url)
    this.epoch = epoch
    this.known = new Map(Object.entries(stores))
  }

  /** Writes `next(current)` to `storeKey`; resolves with the accepted answer and the request that made it. */
  async update(storeKey: string, next: (current: unknown) => unknown, attempts = 200): Promise<{ answer: Answer; request: Record<string, unknown> }> {
    if (this.epoch === '') await this.refresh()
    const opId = ++this.opId
    for (let attempt = 0; attempt < attempts; attempt++) {
      const current = this.known.get(storeKey) ?? { version: 0, state: undefined }
      const request = { storeKey, baseVersion: current.version, epoch: this.epoch, state: next(current.state), clientId: this.clientId, opId: this.opId }
      const sentAt = Date.now()
      const answer = await post(this.url, request, this.user)
      if (answer.status === 200) {
        this.acks.push({ sentAt, request, body: answer.body })
        this.known.set(storeKey, { version: answer.body.version as number, state: answer.body.state })
        return { answer, request }
      }
      const error = answer.body.error
      if (error === 'conflict') {
        this.known.set(storeKey, { version: answer.body.version as number, state: answer.body.state })
      } else if (error === 'epoch_changed' || error === 'unavailable') {
        await new Promise((resolve) => setTimeout(resolve, 20))
        await this.refresh()
      } else if (error === 'unknown_client') {
        this.clientId = newClientId()
        this.opId = 1
      } else {
        throw new Error(`unexpected answer ${answer.status} ${JSON.stringify(answer.body)}`)
      }
    }
    throw new Error(`gave up op ${opId} after ${attempts} attempts`)
  }
}

/** Sleeps. */
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
