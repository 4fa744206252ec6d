import { connect as connectTcp, type Socket } from 'node:net'
import compression from 'compression'
import express from 'express'
import { afterEach, describe, expect, it } from 'vitest'
import { newClientId, type StateResponse } from 'zuno'
import { createUniverse } from 'zuno/server'
import { openRawStream } from '../../zuno/test/support/sseReader'
import type { ZunoExpressOptions } from '../src/index'
import { serveExpress } from './serveExpress'
import { until } from '../../zuno/test/support/until'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function serve(options: ZunoExpressOptions = {}, customize?: (app: express.Express) => void, after?: (app: express.Express) => void) {
  const served = await serveExpress(createUniverse({ stores: { counter: 0, blob: '' } }), options, customize, after)
  cleanups.push(served.close)
  return served
}

/** Posts a proposal of `blob` as the first op of a new client, on the store's current version. */
async function proposeBlob(url: string, blob: string) {
  const { stores, cursor } = (await (await fetch(`${url}/state`)).json()) as StateResponse
  const proposal = { storeKey: 'blob', baseVersion: stores.blob?.version, epoch: cursor.slice(0, cursor.lastIndexOf('-')), state: blob, clientId: newClientId(), opId: 1 }
  const response = await fetch(`${url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(proposal) })
  return { status: response.status, body: (await response.json()) as unknown }
}


describe('zuno-express', () => {
  it('streams unbuffered and uncompressed behind the compression middleware', async () => {
    const { universe, url } = await serve({}, (app) => app.use(compression({ threshold: 0 })))
    const sse = await openRawStream(`${url}/sse`, { 'accept-encoding': 'gzip' })
    cleanups.push(() => sse.close())
    expect(sse.response.headers.get('content-encoding')).toBeNull()
    await sse.nextEvent()
    await universe.store<number>('counter').set(1)
    const event = await sse.nextEvent(1000)
    expect(JSON.parse(event.data as string)).toMatchObject({ storeKey: 'counter', version: 1, state: 1 })
  })

  it('answers the errors of a body parser mounted first in JSON', async () => {
    const { url } = await serve({}, (app) => app.use(express.json()))
    const post = (contentType: string, body: string) =>
      fetch(`${url}/sync`, { method: 'POST', headers: { 'content-type': contentType }, body })
    const latin1 = await post('application/json; charset=latin1', '{}')
    expect(latin1.status).toBe(415)
    expect(await latin1.json()).toMatchObject({ ok: false, error: 'unsupported_media_type' })
    const broken = await post('application/json', '{"storeKey":')
    expect(broken.status).toBe(400)
    expect(await broken.json()).toMatchObject({ ok: false, error: 'bad_json' })
  })

  it("takes a proposal up to maxBodyBytes when mounted before express.json(), whose limit is 100 KB", async () => {
    const { universe, url } = await serve({}, undefined, (app) => app.use(express.json()))
    const blob = 'x'.repeat(200_000)
    expect(await proposeBlob(url, blob)).toMatchObject({ status: 200, body: { ok: true, version: 1 } })
    expect(universe.store('blob').get()).toBe(blob)
  })

  it("answers 413 in JSON when express.json() mounted first refuses a proposal over the parser's limit", async () => {
    const { universe, url } = await serve({}, (app) => app.use(express.json()))
    expect(await proposeBlob(url, 'x'.repeat(200_000))).toMatchObject({ status: 413, body: { ok: false, error: 'payload_too_large' } })
    expect(universe.store('blob').get()).toBe('')
  })

  it('streams server-side writes to clients like any proposal', async () => {
    const { universe, url } = await serve()
    const sse = await openRawStream(`${url}/sse`)
    cleanups.push(() => sse.close())
    await sse.nextEvent()
    await universe.store<number>('counter').set((n) => n + 41)
    const data = JSON.parse((await sse.nextEvent()).data as string)
    expect(data).toMatchObject({ storeKey: 'counter', version: 1, state: 41 })
    // The server writes as a client of its own: a public tag, never a secret id.
    expect(data.writer).toMatch(/^[A-Za-z0-9_-]{16}$/)
    expect(data).not.toHaveProperty('clientId')
  })

  it('forgets a stream as soon as its connection closes', async () => {
    const { middleware, url } = await serve()
    const streams = await Promise.all(Array.from({ length: 5 }, () => openRawStream(`${url}/sse`)))
    await Promise.all(streams.map((sse) => sse.nextEvent()))
    expect(middleware.server.streams).toBe(5)
    for (const sse of streams) sse.close()
    await until(() => middleware.server.streams === 0)
  })

  it('stops writing to a stalled reader past the queue cap while healthy readers get everything', async () => {
    const maxQueuedBytes = 256 * 1024
    const { universe, middleware, port, url } = await serve({ maxQueuedBytes })
    // A reader that connects and never reads: its socket buffers fill, then Zuno's queue does.
    const stalled: Socket = connectTcp(port, '127.0.0.1')
    cleanups.push(() => stalled.destroy())
    stalled.write(`GET /zuno/sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    stalled.pause()
    const healthy = await openRawStream(`${url}/sse`)
    cleanups.push(() => healthy.close())
    await healthy.nextEvent()
    await until(() => middleware.server.streams === 2)

    const blob = universe.store<string>('blob')
    const writes = 200
    const received: number[] = []
    const reading = (async () => {
      while (received.length < writes) received.push(JSON.parse((await healthy.nextEvent(10_000)).data as string).version)
    })()
    for (let i = 0; i < writes; i++) {
      await blob.set(`${i}:${'x'.repeat(64 * 1024)}`)
      // The healthy reader keeps up (a few frames behind at most); the stalled one never reads.
      await until(() => received.length >= i - 2)
    }
    await reading
    expect(received).toEqual(Array.from({ length: writes }, (_, i) => i + 1))
    // 200 × 64 KiB = 12.5 MiB were published; the stalled one was dropped instead of buffering it all.
    await until(() => middleware.server.streams === 1)
  })

  it('holds frames for a reader that pauses and, once it reads again, sends every one in order', async () => {
    const { universe, middleware, port } = await serve({ maxQueuedBytes: 64 * 1024 * 1024 })
    const reader: Socket = connectTcp(port, '127.0.0.1')
    cleanups.push(() => reader.destroy())
    const chunks: Buffer[] = []
    let bytes = 0
    reader.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      bytes += chunk.length
    })
    reader.write(`GET /zuno/sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    await until(() => middleware.server.streams === 1)
    reader.pause()
    // 16 MiB: more than the kernel's socket buffers take, so the server must wait for a drain;
    // less than the queue cap, so the reader is not dropped.
    const writes = 64
    for (let i = 0; i < writes; i++) await universe.store<string>('blob').set(`${i}:${'x'.repeat(256 * 1024)}`)
    reader.resume()
    const versions = () => [...decodeChunked(Buffer.concat(chunks)).matchAll(/"storeKey":"blob","version":(\d+)/g)].map((match) => Number(match[1]))
    await until(() => bytes >= writes * 256 * 1024, 10_000)
    await until(() => versions().length === writes)
    expect(versions()).toEqual(Array.from({ length: writes }, (_, i) => i + 1))
  })
})

/** The body of a raw HTTP/1.1 response in chunked encoding, as far as it has arrived. */
function decodeChunked(raw: Buffer): string {
  let at = raw.indexOf('\r\n\r\n') + 4
  let body = ''
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', at)
    if (lineEnd < 0) return body
    const size = Number.parseInt(raw.subarray(at, lineEnd).toString('latin1'), 16)
    if (size === 0 || lineEnd + 2 + size + 2 > raw.length) return body
    body += raw.subarray(lineEnd + 2, lineEnd + 2 + size).toString('utf8')
    at = lineEnd + 2 + size + 2
  }
}
