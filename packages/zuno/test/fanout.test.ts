import { describe, expect, it } from 'vitest'
import { createUniverse, type SseSink, SyncServer, type ZunoRequest } from '../src/server/index'

/** A transport that records what it is given; `full` makes it report back-pressure. */
class RecordingSink implements SseSink {
  chunks: Uint8Array[] = []
  full = false
  closed = false
  write(chunk: Uint8Array): boolean {
    this.chunks.push(chunk)
    return !this.full
  }
  close(): void {
    this.closed = true
  }
  text(): string {
    return this.chunks.map((chunk) => new TextDecoder().decode(chunk)).join('')
  }
}

const sseRequest = (query = ''): ZunoRequest => ({
  method: 'GET',
  path: '/sse',
  query: new URLSearchParams(query),
  header: () => undefined,
  readBody: () => Promise.reject(new Error('no body')),
})

async function open(server: SyncServer, query = '') {
  const response = await server.handle(sseRequest(query))
  if (response.kind !== 'sse') throw new Error('expected a stream')
  const sink = new RecordingSink()
  const subscription = response.open(sink)
  return { sink, subscription }
}

describe('SSE fan-out', () => {
  it('encodes each event once and writes the very same bytes to every subscriber', async () => {
    const universe = createUniverse({ stores: { counter: 0, other: 0 } })
    const server = new SyncServer(universe)
    const subscribers = await Promise.all([open(server), open(server), open(server, 'stores=counter')])
    const filtered = await open(server, 'stores=other')
    for (const { sink } of [...subscribers, filtered]) sink.chunks = []

    await universe.store<number>('counter').set(1)
    const [first, ...rest] = subscribers.map(({ sink }) => sink.chunks)
    expect(first).toHaveLength(1)
    for (const chunks of rest) expect(chunks[0]).toBe(first?.[0]) // same object: no per-subscriber encoding
    expect(filtered.sink.chunks).toHaveLength(0)
    server.close()
  })

  it('queues frames for a congested subscriber and writes them in order once it drains', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const server = new SyncServer(universe)
    const { sink, subscription } = await open(server)
    sink.chunks = []
    sink.full = true
    await universe.store<number>('counter').set(1) // written; the transport now reports full
    await universe.store<number>('counter').set(2) // queued
    await universe.store<number>('counter').set(3) // queued
    expect(sink.chunks).toHaveLength(1)
    sink.full = false
    subscription.drained()
    expect(sink.text().match(/"version":\d/g)).toEqual(['"version":1', '"version":2', '"version":3'])
    server.close()
  })

  it('drops a congested subscriber whose queue passes the cap', async () => {
    const universe = createUniverse({ stores: { blob: '' } })
    const server = new SyncServer(universe, { maxQueuedBytes: 10_000 })
    const { sink } = await open(server)
    sink.full = true
    for (let i = 0; i < 5; i++) await universe.store<string>('blob').set('x'.repeat(4000) + i)
    expect(sink.closed).toBe(true)
    expect(server.streams).toBe(0)
    server.close()
  })

  it('stops publishing to a subscription once it is closed', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const server = new SyncServer(universe)
    const { sink, subscription } = await open(server)
    subscription.close()
    subscription.close()
    expect(server.streams).toBe(0)
    const before = sink.chunks.length
    await universe.store<number>('counter').set(1)
    expect(sink.chunks.length).toBe(before)
    server.close()
  })
})
