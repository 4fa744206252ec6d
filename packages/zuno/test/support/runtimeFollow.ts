import { expect } from 'vitest'
import { openRawStream, type RawStream } from './sseReader'

/** Opens a stream as Zuno's client does when it follows stores at runtime (`patches=1`) and reads its `hello`; `cleanups` gets its closing. */
export async function openFollowing(cleanups: Array<() => unknown>, url: string, query: string, headers: Record<string, string> = {}): Promise<{ stream: RawStream; streamId: string }> {
  const stream = await openRawStream(`${url}/sse?patches=1&${query}`, headers)
  cleanups.push(() => stream.close())
  const hello = await stream.nextEvent()
  expect(hello.event).toBe('hello')
  return { stream, streamId: (JSON.parse(hello.data as string) as { streamId: string }).streamId }
}

/** POSTs a follow or unfollow request to `/subscribe` as the client does; the status and the JSON answer. */
export async function subscribe(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: { ok: boolean; error?: string } }> {
  const response = await fetch(`${url}/subscribe`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { status: response.status, body: (await response.json()) as { ok: boolean; error?: string } }
}
