/**
 * The client's writer tags: computed with WebCrypto (or, without it, Zuno's own SHA-256, loaded
 * when needed), equal to the server's, and known before an op goes out, so that the replica
 * recognises its own op when the stream brings it back before the answer does.
 */
import { webcrypto } from 'node:crypto'
import { EventSource } from 'eventsource'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { computeWriterTag, type DigestLike, WriterTags } from '../src/client/writerTags'
import { connect, newClientId } from '../src/index'
import { writerTag } from '../src/writerTag'
import { startZuno } from './support/zunoBehindProxy'
import { until } from './support/until'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A WebCrypto whose digests wait until `release()`. */
function heldDigest(): DigestLike & { release(): void; asked: number } {
  let release = () => {}
  const released = new Promise<void>((resolve) => {
    release = resolve
  })
  const held = {
    asked: 0,
    release: () => release(),
    async digest(algorithm: 'SHA-256', data: ArrayBuffer) {
      held.asked += 1
      await released
      return crypto.subtle.digest(algorithm, data)
    },
  }
  return held
}

describe('writer tags on the client', () => {
  it('are the server\'s tags, through WebCrypto, through Zuno\'s own SHA-256, and when WebCrypto refuses or gives no SHA-256', async () => {
    const refusing: DigestLike = { digest: () => Promise.reject(new Error('not here')) }
    const tooShort: DigestLike = { digest: async () => new ArrayBuffer(20) }
    const nodeSubtle: DigestLike = webcrypto.subtle
    await fc.assert(
      fc.asyncProperty(fc.constant(null).map(() => newClientId()), async (clientId) => {
        const expected = writerTag(clientId)
        expect(await computeWriterTag(clientId)).toBe(expected)
        expect(await computeWriterTag(clientId, null)).toBe(expected)
        expect(await computeWriterTag(clientId, refusing)).toBe(expected)
        expect(await computeWriterTag(clientId, tooShort)).toBe(expected)
        expect(await computeWriterTag(clientId, nodeSubtle)).toBe(expected)
      }),
      { numRuns: 100, seed: 20261127 },
    )
  })

  it('come from Zuno\'s own SHA-256 when WebCrypto never answers, so no op waits forever', async () => {
    const silent: DigestLike = { digest: () => new Promise<ArrayBuffer>(() => {}) }
    const clientId = newClientId()
    const started = Date.now()
    expect(await computeWriterTag(clientId, silent)).toBe(writerTag(clientId))
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900)
  })

  it('are computed once per client id, and a failed computation is tried again', async () => {
    let calls = 0
    let fail = true
    const tags = new WriterTags(async (clientId) => {
      calls += 1
      if (fail) throw new Error('the SHA-256 chunk did not load')
      return writerTag(clientId)
    })
    const clientId = newClientId()
    expect(tags.of(clientId)).toBeUndefined()
    await expect(tags.learn(clientId)).rejects.toThrow(/did not load/)
    expect(tags.of(clientId)).toBeUndefined()
    fail = false
    const [a, b] = await Promise.all([tags.learn(clientId), tags.learn(clientId)])
    expect([a, b, tags.of(clientId)]).toEqual([writerTag(clientId), writerTag(clientId), writerTag(clientId)])
    expect(calls).toBe(2)
    await tags.learn(clientId)
    expect(calls).toBe(2)
  })
})

describe('a replica and its own op on the stream', () => {
  it('settles the op from its echo while the answer is still on its way, and never shows it twice', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    // Answers to proposals are held back until released; the stream is not.
    let releaseAnswers = () => {}
    const answersReleased = new Promise<void>((resolve) => {
      releaseAnswers = resolve
    })
    let answered = false
    const slowAnswers: typeof fetch = async (input, init) => {
      const response = await fetch(input, init)
      if (init?.method !== 'POST') return response
      await answersReleased
      answered = true
      return response
    }
    for (const subtle of [undefined, null]) {
      const replica = connect({ url: zuno.url, EventSource, fetch: slowAnswers, tabs: false, ...(subtle === null ? { subtle } : {}) })
      cleanups.push(() => replica.close())
      const counter = replica.store<number>('counter', 0)
      await until(() => replica.status.get() === 'connected' && replica.lastEventId !== undefined)
      const start = counter.get()
      const shown: number[] = []
      counter.subscribe((value) => shown.push(value))
      const written = counter.set((n) => n + 1)
      // Settled by the echo, while the answer is held back.
      const settled = await Promise.race([written.then(() => true), new Promise((resolve) => setTimeout(resolve, 2000, false))])
      expect(settled).toBe(true)
      expect(answered).toBe(false)
      const version = await written
      expect(version).toBe(zuno.universe.store('counter').version)
      expect(counter.get()).toBe(start + 1)
      // Applied once: shown as start + 1 at once, never as start + 2 when the echo came in.
      expect(shown.every((value) => value === start + 1)).toBe(true)
      expect(replica.pending.get()).toBe(0)
      replica.close()
    }
    releaseAnswers()
  })

  it('sends nothing until its writer tag is known, then recognises the echo', async () => {
    const zuno = await startZuno()
    cleanups.push(() => zuno.close())
    const subtle = heldDigest()
    const replica = connect({ url: zuno.url, EventSource, tabs: false, subtle })
    cleanups.push(() => replica.close())
    const counter = replica.store<number>('counter', 0)
    await until(() => replica.status.get() === 'connected' && replica.lastEventId !== undefined)
    const written = counter.set((n) => n + 1)
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(subtle.asked).toBe(1)
    expect(zuno.seen.filter((request) => request.method === 'POST')).toHaveLength(0)
    expect(counter.get()).toBe(1) // shown at once, optimistically
    subtle.release()
    expect(await written).toBe(1)
    expect(zuno.universe.store('counter').get()).toBe(1)
  })
})
