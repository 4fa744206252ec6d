import { describe, expect, it } from 'vitest'
import { newClientId } from '../src/id'
import { createFetchHandler, createUniverse } from '../src/server/index'
import { until } from './support/until'

const proposal = (epoch: string, fields: Record<string, unknown> = {}) =>
  JSON.stringify({ storeKey: 'counter', baseVersion: 0, epoch, state: 1, clientId: newClientId(), opId: 1, ...fields })

describe('web-standard fetch handler', () => {
  it('answers web Requests with web Responses', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    await universe.ready
    const handler = createFetchHandler(universe)
    const response = await handler(
      new Request('http://localhost/zuno/sync', { method: 'POST', headers: { 'content-type': 'application/json' }, body: proposal(universe.epoch) }),
    )
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^application\/json/)
    expect(await response.json()).toEqual({ ok: true, storeKey: 'counter', version: 1, state: 1 })
  })

  it('honours a custom prefix and answers 404 in JSON outside it', async () => {
    const handler = createFetchHandler(createUniverse({ stores: { counter: 0 } }), { prefix: '/api/sync/' })
    expect((await handler(new Request('http://localhost/api/sync/state'))).status).toBe(200)
    const outside = await handler(new Request('http://localhost/zuno/state'))
    expect(outside.status).toBe(404)
    expect(await outside.json()).toMatchObject({ ok: false, error: 'not_found' })
  })

  it('streams SSE as a ReadableStream and lets go when the reader cancels', async () => {
    const universe = createUniverse({ stores: { counter: 0 } })
    const handler = createFetchHandler(universe)
    const response = await handler(new Request('http://localhost/zuno/sse'))
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    const decoder = new TextDecoder()
    let text = ''
    while (!text.includes('event: snapshot')) text += decoder.decode((await reader.read()).value)
    expect(handler.server.streams).toBe(1)
    await universe.store<number>('counter').set(7)
    while (!text.includes('event: state')) text += decoder.decode((await reader.read()).value)
    expect(text).toContain('"state":7')
    await reader.cancel()
    await until(() => handler.server.streams === 0)
  })

  it('stops reading a body at the limit', async () => {
    const handler = createFetchHandler(createUniverse({ stores: { counter: 0 } }), { maxBodyBytes: 100 })
    let pulled = 0
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 1
        controller.enqueue(new TextEncoder().encode('x'.repeat(64)))
      },
    })
    const response = await handler(
      new Request('http://localhost/zuno/sync', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: endless,
        duplex: 'half',
      } as RequestInit),
    )
    expect(response.status).toBe(413)
    expect(pulled).toBeLessThan(10)
  })
})
