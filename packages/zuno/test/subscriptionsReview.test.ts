/**
 * Review of runtime subscriptions (server side), over real HTTP on 127.0.0.1: revocation must not
 * be undone by a follow or a reconnect that was checked before it and carried out after it.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { formatEventId, parseEventId } from '../src/index'
import type { Principal } from '../src/server/index'
import { dataOf, openRawStream, type RawStream, type SseFrame } from './support/sseReader'
import { startZuno } from './support/zunoBehindProxy'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** Every event of `stream` until none comes within `quietMs`. */
async function drain(stream: RawStream, quietMs = 300): Promise<SseFrame[]> {
  const frames: SseFrame[] = []
  for (;;) {
    try {
      frames.push(await stream.nextEvent(quietMs))
    } catch {
      return frames
    }
  }
}

function roomServer() {
  const members = new Set(['ada'])
  /** Called when `authorize` is asked to read the room: a hook to change rights right after the check. */
  const onRoomCheck: { hook: (() => void) | undefined } = { hook: undefined }
  const handler = {
    authenticate: () => ({ id: 'ada' }),
    authorize: ({ principal, storeKey }: { principal: Principal | undefined; storeKey: string }) => {
      if (storeKey !== 'room') return true
      const may = members.has(principal?.id ?? '')
      const hook = onRoomCheck.hook
      onRoomCheck.hook = undefined
      hook?.()
      return may
    },
  }
  return { members, onRoomCheck, handler }
}

describe('revocation is not undone by a control request or a reconnect checked before it', () => {
  it('a follow authorized just before a revalidate is not carried out after it', async () => {
    const { members, onRoomCheck, handler } = roomServer()
    const zuno = await startZuno({ handler })
    cleanups.push(() => zuno.close())
    await zuno.universe.store('room', 'open').set('v1')
    const stream = await openRawStream(`${zuno.url}/sse?patches=1&stores=counter&versions=-`)
    cleanups.push(() => stream.close())
    const hello = await stream.nextEvent()
    const { streamId } = dataOf(hello) as { streamId: string }
    await stream.nextEvent() // snapshot
    // The rights change between the check of the request and its effect on the stream (on another
    // instance, a Redis round trip apart): the app revalidates at once.
    onRoomCheck.hook = () => {
      members.delete('ada')
      void zuno.universe.revalidate('ada')
    }
    await fetch(`${zuno.url}/subscribe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamId, follow: ['room'] }) })
    await zuno.universe.store('room').set('secret after revocation')
    const frames = await drain(stream)
    expect(frames.map((frame) => frame.data).join('\n')).not.toContain('secret after revocation')
  })

  it('a reconnect that waits for its instance to catch up does not carry a store revoked meanwhile', async () => {
    const { members, handler } = roomServer()
    const zuno = await startZuno({ handler })
    cleanups.push(() => zuno.close())
    await zuno.universe.store('room', 'open').set('v1')
    // A client resuming from an event this instance has not applied yet (it saw it on another one).
    const { epoch, seq } = parseEventId(zuno.universe.cursor) as { epoch: string; seq: number }
    const ahead = formatEventId(epoch, seq + 1)
    const opening = openRawStream(`${zuno.url}/sse?patches=1&stores=counter&follow=room&versions=-,1&lastEventId=${ahead}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
    // Revoked while the reconnect waits: the app revalidates, then the instance catches up.
    members.delete('ada')
    await zuno.universe.revalidate('ada')
    await zuno.universe.store('counter').set(1)
    const stream = await opening
    cleanups.push(() => stream.close())
    await zuno.universe.store('room').set('secret after revocation')
    const frames = await drain(stream)
    expect(frames.map((frame) => frame.data).join('\n')).not.toContain('secret after revocation')
  })
})
