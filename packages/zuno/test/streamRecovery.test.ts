import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { connect } from '../src/index'
import { until } from './support/until'

/**
 * A scripted SSE server, to put the replica in situations a correct Zuno server never creates
 * (a version gap) or creates only under failures (a stream that dies, an epoch that changes).
 */
async function scriptedServer(script: (connection: number, req: IncomingMessage, res: ServerResponse) => void) {
  const urls: string[] = []
  const server = createServer((req, res) => {
    urls.push(req.url ?? '')
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    script(urls.length, req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const close = async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
  return { urls, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/zuno`, close }
}

const frame = (id: string, event: string, data: unknown) => `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`
const state = (version: number, value: number) => ({ storeKey: 'counter', version, state: value, writer: 'x', opId: version })

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A replica of the scripted server, closed (with the server) after the test. */
function follow(server: { url: string; close(): Promise<void> }) {
  cleanups.push(server.close)
  const replica = connect({ url: server.url, EventSource })
  cleanups.push(() => replica.close())
  return replica
}

describe('replica stream recovery', () => {
  it('never applies an event past a version gap: it resyncs from a snapshot instead', async () => {
    const server = await scriptedServer((connection, _req, res) => {
      if (connection === 1) {
        res.write(frame('ep-0', 'snapshot', { stores: { counter: { version: 0, state: 0 } } }))
        res.write(frame('ep-1', 'state', state(1, 1)))
        res.write(frame('ep-3', 'state', state(3, 3))) // v2 never came
      } else {
        res.write(frame('ep-3', 'snapshot', { stores: { counter: { version: 3, state: 33 } } }))
      }
    })
    const replica = follow(server)
    const counter = replica.store<number>('counter', 0)
    const shown: number[] = []
    counter.subscribe((value) => shown.push(value))
    await until(() => counter.version === 3)
    expect(shown).toEqual([1, 33])
    expect(server.urls[1]).toBe('/zuno/sse?v=2&patches=1&hello=1') // a fresh stream: no lastEventId, so a snapshot
  })

  it('applies a patch to the version before it, and resyncs on a patch past a gap or one that does not apply', async () => {
    const patched = (version: number, patch: unknown) => ({ storeKey: 'doc', version, patch, writer: 'x', opId: version })
    const server = await scriptedServer((connection, _req, res) => {
      if (connection === 1) {
        res.write(frame('ep-0', 'snapshot', { stores: { doc: { version: 0, state: { a: 1, b: 1 } } } }))
        res.write(frame('ep-1', 'state', patched(1, [[['a'], 2]])))
        res.write(frame('ep-3', 'state', patched(3, [[['b'], 3]]))) // v2 never came
      } else if (connection === 2) {
        res.write(frame('ep-3', 'snapshot', { stores: { doc: { version: 3, state: { a: 2, b: 3 } } } }))
        res.write(frame('ep-4', 'state', patched(4, [[['missing', 'deeper'], 4]]))) // does not apply
      } else {
        res.write(frame('ep-4', 'snapshot', { stores: { doc: { version: 4, state: { a: 4, b: 4 } } } }))
      }
    })
    const replica = follow(server)
    const doc = replica.store<{ a: number; b: number }>('doc', { a: 0, b: 0 })
    const shown: unknown[] = []
    doc.subscribe((value) => shown.push(value))
    await until(() => doc.version === 4)
    expect(shown).toEqual([{ a: 1, b: 1 }, { a: 2, b: 1 }, { a: 2, b: 3 }, { a: 4, b: 4 }])
    // Each resync is a fresh stream: no lastEventId, so a snapshot.
    expect(server.urls.slice(1)).toEqual(['/zuno/sse?v=2&patches=1&hello=1', '/zuno/sse?v=2&patches=1&hello=1'])
  })

  it('reconnects by itself after the stream dies and resumes from the last applied id', async () => {
    const server = await scriptedServer((connection, _req, res) => {
      if (connection === 1) {
        res.write(frame('ep-0', 'snapshot', { stores: { counter: { version: 0, state: 0 } } }))
        res.write(frame('ep-1', 'state', state(1, 1)))
        setTimeout(() => res.destroy(), 20)
      } else {
        res.write(frame('ep-2', 'state', state(2, 2)))
      }
    })
    const statuses: string[] = []
    const replica = follow(server)
    replica.status.subscribe((status) => statuses.push(status))
    const counter = replica.store<number>('counter', 0)
    await until(() => counter.version === 2)
    expect(server.urls[1]).toBe('/zuno/sse?v=2&patches=1&hello=1&lastEventId=ep-1')
    expect(statuses).toEqual(['connected', 'offline', 'connecting', 'connected'])
  })

  it('starts over from a snapshot when the server drops it with a resync instruction', async () => {
    const server = await scriptedServer((connection, _req, res) => {
      if (connection === 1) {
        res.write(frame('ep-0', 'snapshot', { stores: { counter: { version: 0, state: 0 } } }))
        res.write(frame('ep-1', 'state', state(1, 1)))
        res.write('event: resync\ndata: {}\n\n')
        res.end()
      } else {
        res.write(frame('ep-9', 'snapshot', { stores: { counter: { version: 9, state: 9 } } }))
      }
    })
    const replica = follow(server)
    const counter = replica.store<number>('counter', 0)
    await until(() => counter.version === 9)
    expect(server.urls[1]).toBe('/zuno/sse?v=2&patches=1&hello=1') // no lastEventId: a fresh snapshot, not a resume
  })

  it('adopts the snapshot of a restarted server (new epoch) even with lower versions', async () => {
    const server = await scriptedServer((connection, _req, res) => {
      if (connection === 1) {
        res.write(frame('old-5', 'snapshot', { stores: { counter: { version: 5, state: 5 } } }))
        setTimeout(() => res.destroy(), 20)
      } else {
        res.write(frame('new-0', 'snapshot', { stores: { counter: { version: 0, state: 0 } } }))
      }
    })
    const replica = follow(server)
    const counter = replica.store<number>('counter', 0)
    await until(() => counter.version === 5)
    await until(() => replica.lastEventId === 'new-0')
    expect(counter.version).toBe(0)
    expect(counter.get()).toBe(0)
  })

  it('never applies an event of another epoch before that epoch\'s snapshot: it starts over from one', async () => {
    const server = await scriptedServer((connection, _req, res) => {
      if (connection === 1) {
        res.write(frame('old-0', 'snapshot', { stores: { counter: { version: 0, state: 0 }, notes: { version: 0, state: 'a' } } }))
        res.write(frame('old-1', 'state', { ...state(1, 1), storeKey: 'notes', state: 'b' }))
        res.write(frame('old-2', 'state', { ...state(2, 2), storeKey: 'notes', state: 'c' }))
        // Whatever sent this, it belongs to a history the replica has no snapshot of.
        res.write(frame('new-1', 'state', state(1, 7)))
      } else {
        res.write(frame('new-1', 'snapshot', { stores: { counter: { version: 1, state: 7 } } }))
      }
    })
    const replica = follow(server)
    const notes = replica.store<string>('notes', 'initial')
    const counter = replica.store<number>('counter', 0)
    await until(() => notes.version === 2)
    await until(() => server.urls.length === 2 && replica.lastEventId === 'new-1')
    expect(server.urls[1]).toBe('/zuno/sse?v=2&patches=1&hello=1')
    // The new epoch reset what it does not hold to the initial state, and nothing of the old history stays.
    expect({ version: notes.version, state: notes.get() }).toEqual({ version: 0, state: 'initial' })
    expect({ version: counter.version, state: counter.get() }).toEqual({ version: 1, state: 7 })
  })
})
