/**
 * The protocol conformance suite, written once: every adapter runs it against a real server
 * it starts on 127.0.0.1, talking only HTTP (fetch) and SSE (raw fetch and the `eventsource` package).
 */
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { EventSource } from 'eventsource'
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { newClientId } from '../../src/id'
import { parseEventId } from '../../src/protocol'
import { writerTag } from '../../src/writerTag'
import { openRawStream, type RawStream } from '../support/sseReader'
import { until } from '../support/until'
import type { HostileCase } from './makeHostileCorpus'
import { CLIENT_PLACEHOLDER, EPOCH_PLACEHOLDER, STREAM_PLACEHOLDER } from './placeholders'

/** The checked-in hostile-input corpus (regenerate with makeHostileCorpus.ts). */
const hostileCorpus = JSON.parse(readFileSync(new URL('./hostile-corpus.json', import.meta.url), 'utf8')) as HostileCase[]

/** What a target must configure its server with. Plain data, so it can cross a process boundary. */
export interface ConformanceConfig {
  /** Declared stores and their initial states. */
  stores: Record<string, unknown>
  /** Clients may create stores whose key starts with this; no others. */
  creatablePrefix: string
  /** Events kept for resume. */
  retention: number
  maxBodyBytes: number
  maxDepth: number
  heartbeatMs: number
  /** Per principal, or per peer address when anonymous (every test client is on one address). */
  maxProposalsPerSecond: number
  /** How long a resume from an id past the server's position waits before the snapshot. */
  resumeWaitMs: number
  /** `POST /presence` requests a second per stream; the library's default when absent. */
  maxPresencePerSecond?: number
}

/** The sync server options a target passes on from a config. */
export function serverOptions(config: ConformanceConfig) {
  const { maxBodyBytes, maxDepth, heartbeatMs, maxProposalsPerSecond, resumeWaitMs, maxPresencePerSecond } = config
  return { maxBodyBytes, maxDepth, heartbeatMs, maxProposalsPerSecond, resumeWaitMs, ...(maxPresencePerSecond === undefined ? {} : { maxPresencePerSecond }) }
}

/** A server started by a target. */
export interface RunningTarget {
  /** Base URL including the prefix, such as `http://127.0.0.1:4321/zuno`. */
  url: string
  /** Graceful shutdown of the sync server (the HTTP server keeps listening). */
  shutdown(): Promise<void>
  close(): Promise<void>
}

/** An adapter under test. */
export interface ConformanceTarget {
  name: string
  start(config: ConformanceConfig): Promise<RunningTarget>
}

export const conformanceConfig: ConformanceConfig = {
  stores: { counter: 0, todos: [], profile: { name: 'ada' } },
  creatablePrefix: 'open.',
  retention: 5,
  maxBodyBytes: 64 * 1024,
  maxDepth: 16,
  heartbeatMs: 200,
  maxProposalsPerSecond: 100_000,
  resumeWaitMs: 100,
  maxPresencePerSecond: 100_000,
}

interface Answer {
  status: number
  contentType: string | null
  body: Record<string, unknown>
}

/** Versions of the `state` events among `events`. */
const stateVersions = (events: Array<{ event?: string; data?: string }>) =>
  events.filter((event) => event.event === 'state').map((event) => JSON.parse(event.data as string).version as number)

/** Client ids by readable name, so a test can speak of "the writer". */
const namedIds = new Map<string, string>()
const named = (name: string): string => {
  let id = namedIds.get(name)
  if (id === undefined) namedIds.set(name, (id = newClientId()))
  return id
}

/** The epoch of the server under test: proposals must name it. */
let epoch = ''

/** A well-formed proposal, by default the first op of a fresh client; override fields to make it otherwise. */
function proposal(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { storeKey: 'counter', baseVersion: 0, epoch, state: 1, clientId: newClientId(), opId: 1, ...fields }
}

/** The body of a raw HTTP/1.1 response, de-chunked when it was sent in chunks. */
function httpBody(response: string): string {
  const split = response.indexOf('\r\n\r\n')
  let rest = response.slice(split + 4)
  if (!/^transfer-encoding: *chunked/im.test(response.slice(0, split))) return rest
  let body = ''
  for (;;) {
    const lineEnd = rest.indexOf('\r\n')
    const size = Number.parseInt(rest.slice(0, lineEnd), 16)
    if (!(size > 0)) return body
    body += rest.slice(lineEnd + 2, lineEnd + 2 + size)
    rest = rest.slice(lineEnd + 2 + size + 2)
  }
}

export function runConformanceSuite(target: ConformanceTarget): void {
  describe(`protocol v2 conformance: ${target.name}`, () => {
    let server: RunningTarget
    const streams: Array<{ close(): void }> = []

    beforeEach(async () => {
      server = await target.start(conformanceConfig)
      const { cursor } = (await (await fetch(`${server.url}/state`)).json()) as { cursor: string }
      epoch = parseEventId(cursor)?.epoch ?? ''
    })
    afterEach(async () => {
      for (const stream of streams.splice(0)) stream.close()
      await server.close()
    })

    const post = async (body: unknown, init: { contentType?: string | null; raw?: boolean } = {}): Promise<Answer> => {
      const headers: Record<string, string> = {}
      const contentType = init.contentType === undefined ? 'application/json' : init.contentType
      if (contentType !== null) headers['content-type'] = contentType
      const response = await fetch(`${server.url}/sync`, {
        method: 'POST',
        headers,
        body: init.raw ? (body as string) : JSON.stringify(body),
      })
      return { status: response.status, contentType: response.headers.get('content-type'), body: await response.json() }
    }
    const getState = async (query = ''): Promise<Answer> => {
      const response = await fetch(`${server.url}/state${query}`)
      return { status: response.status, contentType: response.headers.get('content-type'), body: await response.json() }
    }
    const stream = async (query = '', headers: Record<string, string> = {}): Promise<RawStream> => {
      const opened = await openRawStream(`${server.url}/sse${query}`, headers)
      streams.push(opened)
      return opened
    }
    const expectError = (answer: Answer, status: number, code: string) => {
      expect(answer.status).toBe(status)
      expect(answer.contentType).toMatch(/^application\/json/)
      expect(answer.body).toMatchObject({ ok: false, error: code })
      expect(typeof answer.body.message).toBe('string')
    }
    /**
     * Sends requests with `send` until one is refused with 429 (at most `attempts`): each 429 must
     * say when to retry and be a JSON `rate_limited` error. Resolves with every status, in order.
     */
    const statusesUntilRateLimited = async (attempts: number, send: (i: number) => Promise<Response>): Promise<number[]> => {
      const statuses: number[] = []
      for (let i = 0; i < attempts && !statuses.includes(429); i++) {
        const response = await send(i)
        statuses.push(response.status)
        if (response.status === 429) {
          expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0)
          expect(await response.json()).toMatchObject({ ok: false, error: 'rate_limited' })
        } else await response.body?.cancel()
      }
      return statuses
    }
    const expectUnchanged = async () => {
      const { body } = await getState()
      expect(body.stores).toEqual({
        counter: { version: 0, state: 0 },
        todos: { version: 0, state: [] },
        profile: { version: 0, state: { name: 'ada' } },
      })
    }

    describe('POST /sync', () => {
      it('accepts a proposal on the current version and answers version + 1', async () => {
        const answer = await post(proposal({ baseVersion: 0, state: 5 }))
        expect(answer.status).toBe(200)
        expect(answer.body).toEqual({ ok: true, storeKey: 'counter', version: 1, state: 5 })
        const second = await post(proposal({ baseVersion: 1, state: 6 }))
        expect(second.body).toEqual({ ok: true, storeKey: 'counter', version: 2, state: 6 })
      })

      it('answers 409 with the current state when baseVersion is stale', async () => {
        await post(proposal({ baseVersion: 0, state: 7 }))
        const answer = await post(proposal({ baseVersion: 0, state: 8 }))
        expect(answer.status).toBe(409)
        expect(answer.body).toEqual({ ok: false, error: 'conflict', storeKey: 'counter', version: 1, state: 7 })
        const ahead = await post(proposal({ baseVersion: 5, state: 9 }))
        expect(ahead.status).toBe(409)
        expect(ahead.body).toMatchObject({ version: 1, state: 7 })
      })

      it('answers 409 with the declared initial state for a store never written', async () => {
        const answer = await post(proposal({ storeKey: 'profile', baseVersion: 3, state: {} }))
        expect(answer.status).toBe(409)
        expect(answer.body).toEqual({ ok: false, error: 'conflict', storeKey: 'profile', version: 0, state: { name: 'ada' } })
      })

      it('creates an allowed store on baseVersion 0 and refuses keys the server does not allow', async () => {
        const created = await post(proposal({ storeKey: 'open.notes', baseVersion: 0, state: ['hi'] }))
        expect(created.body).toEqual({ ok: true, storeKey: 'open.notes', version: 1, state: ['hi'] })
        expectError(await post(proposal({ storeKey: 'secret', baseVersion: 0, state: 1 })), 403, 'store_not_allowed')
        const { body } = await getState()
        expect(Object.keys(body.stores as object).sort()).toEqual(['counter', 'open.notes', 'profile', 'todos'])
      })

      it('answers a retried (clientId, opId) with the original 200 and applies it once', async () => {
        const op = proposal({ baseVersion: 0, state: 41, clientId: named('retrier'), opId: 1 })
        const first = await post(op)
        const retry = await post(op)
        expect(first.status).toBe(200)
        expect(retry.status).toBe(200)
        expect(retry.body).toEqual(first.body)
        const { body } = await getState('?stores=counter')
        expect(body.stores).toEqual({ counter: { version: 1, state: 41 } })
      })

      it('never answers 409 to a retry of an applied op, even after others wrote', async () => {
        const op = proposal({ baseVersion: 0, state: 1, clientId: named('late-retrier'), opId: 1 })
        const first = await post(op)
        await post(proposal({ baseVersion: 1, state: 2 }))
        const retry = await post(op)
        expect(retry.status).toBe(200)
        expect(retry.body).toEqual(first.body)
        const { body } = await getState('?stores=counter')
        expect(body.stores).toEqual({ counter: { version: 2, state: 2 } })
      })

      it('never answers another op\'s answer: a reused opId with another store or state is refused', async () => {
        const clientId = named('reuser')
        const first = await post(proposal({ baseVersion: 0, state: 1, clientId, opId: 1 }))
        expect(first.status).toBe(200)
        for (const reused of [proposal({ storeKey: 'todos', state: [], clientId, opId: 1 }), proposal({ state: 2, clientId, opId: 1 })]) {
          const answer = await post(reused)
          expectError(answer, 409, 'op_id_reused')
          expect(answer.body).not.toHaveProperty('state')
        }
        // An unknown client, or one that skips ids, is told so and nothing changes.
        expectError(await post(proposal({ baseVersion: 1, state: 3, clientId, opId: 3 })), 409, 'unknown_client')
        expectError(await post(proposal({ baseVersion: 1, state: 3, opId: 2 })), 409, 'unknown_client')
        const { body } = await getState('?stores=counter,todos')
        expect(body.stores).toEqual({ counter: { version: 1, state: 1 }, todos: { version: 0, state: [] } })
      })

      it('answers 409 epoch_changed to a proposal made in another epoch, and 400 to a bad epoch', async () => {
        expectError(await post(proposal({ epoch: 'someotherepoch' })), 409, 'epoch_changed')
        for (const bad of ['', 'a-b', 'x'.repeat(49), 5, null, undefined]) {
          expectError(await post(proposal({ epoch: bad })), 400, 'invalid_epoch')
        }
        await expectUnchanged()
      })

      it('names its protocol on every answer, and refuses a request for another one', async () => {
        const ok = await fetch(`${server.url}/sync`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'zuno-protocol': '2' },
          body: JSON.stringify(proposal()),
        })
        expect(ok.status).toBe(200)
        expect(ok.headers.get('zuno-protocol')).toBe('2')
        const old = await fetch(`${server.url}/sync`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'zuno-protocol': '1' },
          body: JSON.stringify(proposal({ baseVersion: 1 })),
        })
        expect(old.status).toBe(400)
        expect(await old.json()).toMatchObject({ ok: false, error: 'unsupported_protocol' })
        const oldStream = await fetch(`${server.url}/sse?v=1`)
        expect(oldStream.status).toBe(400)
        expect(await oldStream.json()).toMatchObject({ ok: false, error: 'unsupported_protocol' })
        const stateAnswer = await fetch(`${server.url}/state`)
        expect(stateAnswer.headers.get('zuno-protocol')).toBe('2')
        await stateAnswer.body?.cancel()
      })

      it('answers in JSON, and never lets a cache keep a snapshot', async () => {
        const accepted = await fetch(`${server.url}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(proposal()) })
        expect(accepted.headers.get('content-type')).toMatch(/^application\/json/)
        await accepted.body?.cancel()
        const snapshot = await fetch(`${server.url}/state`)
        expect(snapshot.headers.get('content-type')).toMatch(/^application\/json/)
        expect(snapshot.headers.get('cache-control')).toBe('no-store')
        await snapshot.body?.cancel()
      })

      it('gives exactly one 200 among 20 concurrent proposals on one baseVersion', async () => {
        const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => post(proposal({ baseVersion: 0, state: i }))))
        const statuses = answers.map((answer) => answer.status).sort()
        expect(statuses.filter((status) => status === 200)).toHaveLength(1)
        expect(statuses.filter((status) => status === 409)).toHaveLength(19)
        const winner = answers.find((answer) => answer.status === 200)
        const { body } = await getState('?stores=counter')
        expect(body.stores).toEqual({ counter: { version: 1, state: winner?.body.state } })
      })

      it('loses no increment when clients read-modify-write with retry on 409, and streams every version once in order', async () => {
        const clients = 5
        const incrementsEach = 15
        const total = clients * incrementsEach
        const observer = new EventSource(`${server.url}/sse?stores=counter`)
        streams.push(observer)
        const seen: number[] = []
        const done = new Promise<void>((resolve) => {
          observer.addEventListener('state', (event) => {
            seen.push((JSON.parse(event.data) as { version: number }).version)
            if (seen.length === total) resolve()
          })
        })
        await new Promise<void>((resolve) => observer.addEventListener('snapshot', () => resolve(), { once: true }))

        const increment = async (clientId: string) => {
          let { version, state } = { version: 0, state: 0 }
          for (let opId = 1; opId <= incrementsEach; opId++) {
            // A 409 leaves the op's id free: the rebased attempt goes under the same one.
            for (;;) {
              const answer = await post({ storeKey: 'counter', baseVersion: version, epoch, state: state + 1, clientId, opId })
              version = answer.body.version as number
              state = answer.body.state as number
              if (answer.status === 200) break
              expect(answer.status).toBe(409)
            }
          }
        }
        await Promise.all(Array.from({ length: clients }, () => increment(newClientId())))
        await done
        expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1))
        const { body } = await getState('?stores=counter')
        expect(body.stores).toEqual({ counter: { version: total, state: total } })
      })

      it('answers 415 to any content type but JSON', async () => {
        for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data', 'application/jsonx', null]) {
          expectError(await post(proposal(), { contentType }), 415, 'unsupported_media_type')
        }
        expect((await post(proposal({ baseVersion: 0 }), { contentType: 'application/json; charset=utf-8' })).status).toBe(200)
      })

      it('answers 400 bad_json to malformed JSON', async () => {
        for (const raw of ['{', '{"storeKey":', 'nope', '', '{"a":1}}', '\u0000']) {
          expectError(await post(raw, { raw: true }), 400, 'bad_json')
        }
        await expectUnchanged()
      })

      it('answers 400 invalid_body to a body that is not an object', async () => {
        for (const body of [[], [proposal()], 'text', 42, null, true]) {
          expectError(await post(body), 400, 'invalid_body')
        }
        await expectUnchanged()
      })

      it('answers 400 invalid_store_key to a bad store key', async () => {
        for (const storeKey of ['', '-lead', '.dot', 'a b', 'a/b', '../etc', 'x'.repeat(129), 'ünï', 7, null, undefined]) {
          expectError(await post(proposal({ storeKey, baseVersion: 0 })), 400, 'invalid_store_key')
        }
        await expectUnchanged()
      })

      it('answers 400 invalid_base_version unless baseVersion is a non-negative integer', async () => {
        for (const baseVersion of [-1, 1.5, '0', null, undefined, 2 ** 53, Number.NaN, {}]) {
          expectError(await post(proposal({ baseVersion })), 400, 'invalid_base_version')
        }
        await expectUnchanged()
      })

      it('answers 400 missing_state when state is absent', async () => {
        const { state: _, ...withoutState } = proposal({ baseVersion: 0 })
        expectError(await post(withoutState), 400, 'missing_state')
        await expectUnchanged()
      })

      it('accepts null as a state', async () => {
        expect((await post(proposal({ storeKey: 'profile', baseVersion: 0, state: null }))).body).toMatchObject({
          ok: true,
          version: 1,
          state: null,
        })
      })

      it('answers 400 to a bad clientId or opId', async () => {
        // v1's chosen ids are refused too: an id must be a random tag and secret.
        for (const clientId of ['', 'a b', 'x'.repeat(129), 5, null, 'device-42', `${'a'.repeat(16)}.${'b'.repeat(21)}`]) {
          expectError(await post(proposal({ baseVersion: 0, clientId })), 400, 'invalid_client_id')
        }
        for (const opId of [-1, 0, 0.5, '3', null, undefined]) {
          expectError(await post(proposal({ baseVersion: 0, opId })), 400, 'invalid_op_id')
        }
        await expectUnchanged()
      })

      it('answers 413 to a body over the limit, declared or streamed', async () => {
        const huge = proposal({ baseVersion: 0, state: 'x'.repeat(conformanceConfig.maxBodyBytes) })
        expectError(await post(huge), 413, 'payload_too_large')
        // No Content-Length: the server must count as it reads.
        const chunks = new ReadableStream<Uint8Array>({
          start(controller) {
            const piece = new TextEncoder().encode('x'.repeat(16 * 1024))
            controller.enqueue(new TextEncoder().encode(`{"storeKey":"counter","baseVersion":0,"epoch":"${epoch}","clientId":"${newClientId()}","opId":1,"state":"`))
            for (let i = 0; i < 8; i++) controller.enqueue(piece)
            controller.enqueue(new TextEncoder().encode('"}'))
            controller.close()
          },
        })
        const response = await fetch(`${server.url}/sync`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: chunks,
          duplex: 'half',
        } as RequestInit)
        expect(response.status).toBe(413)
        expect(await response.json()).toMatchObject({ ok: false, error: 'payload_too_large' })
        await expectUnchanged()
      })

      it('answers 400 too_deep to nesting deeper than the limit, however deep', async () => {
        const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`
        const body = (levels: number) =>
          `{"storeKey":"todos","baseVersion":0,"epoch":"${epoch}","clientId":"${newClientId()}","opId":1,"state":${deep(levels)}}`
        expectError(await post(body(conformanceConfig.maxDepth + 1), { raw: true }), 400, 'too_deep')
        expectError(await post(body(30_000), { raw: true }), 400, 'too_deep')
        expect((await post(body(conformanceConfig.maxDepth - 1), { raw: true })).status).toBe(200)
      })

      it('answers 422 invalid_state to a number JSON.parse reads as Infinity, a long mantissa with a short exponent too', async () => {
        const body = (number: string) => `{"storeKey":"todos","baseVersion":0,"epoch":"${epoch}","clientId":"${newClientId()}","opId":1,"state":{"n":${number}}}`
        for (const number of ['1e400', `${'9'.repeat(300)}e9`, `1${'0'.repeat(250)}E+99`]) {
          expectError(await post(body(number), { raw: true }), 422, 'invalid_state')
        }
        expect((await post(body(`${'9'.repeat(300)}e-9`), { raw: true })).status).toBe(200)
      })

      it('answers 405 to other methods and 404 to unknown paths, in JSON', async () => {
        const wrong = await fetch(`${server.url}/sync`)
        expect(wrong.status).toBe(405)
        expect(await wrong.json()).toMatchObject({ ok: false, error: 'method_not_allowed' })
        const postState = await fetch(`${server.url}/state`, { method: 'POST' })
        expect(postState.status).toBe(405)
        const missing = await fetch(`${server.url}/nothing-here`)
        expect(missing.status).toBe(404)
        expect(await missing.json()).toMatchObject({ ok: false, error: 'not_found' })
      })
    })

    describe('POST /sync with an action', () => {
      const action = (name: string, fields: Record<string, unknown> = {}) => ({ action: name, epoch, clientId: newClientId(), opId: 1, ...fields })

      it('runs it on the current state and commits every store it wrote as one change, streamed as one commit', async () => {
        const all = await stream()
        const profileOnly = await stream('?stores=profile')
        expect((await all.nextEvent()).event).toBe('snapshot')
        expect((await profileOnly.nextEvent()).event).toBe('snapshot')
        const answer = await post(action('rename', { args: { name: 'grace' } }))
        expect(answer.status).toBe(200)
        expect(answer.body).toMatchObject({
          ok: true,
          action: 'rename',
          changes: [{ storeKey: 'profile', version: 1, state: { name: 'grace' } }, { storeKey: 'todos', version: 1, state: ['renamed to grace'] }],
        })
        const commit = await all.nextEvent()
        expect(commit.event).toBe('commit')
        expect(commit.id).toBe(answer.body.cursor)
        expect(parseEventId(commit.id ?? '')?.seq).toBe(1)
        expect(JSON.parse(commit.data ?? '')).toMatchObject({ changes: [{ storeKey: 'profile', version: 1 }, { storeKey: 'todos', version: 1 }], opId: 1 })
        // A stream that follows one of the stores gets its part, as a state event under the same id.
        const part = await profileOnly.nextEvent()
        expect(part).toMatchObject({ event: 'state', id: commit.id })
        expect(JSON.parse(part.data ?? '')).toMatchObject({ storeKey: 'profile', version: 1, state: { name: 'grace' } })
      })

      it('answers a retried action with its first answer, runs it once, and records what it refused', async () => {
        const op = action('increment', { args: { by: 5 }, clientId: named('action retrier') })
        const first = await post(op)
        expect(first.body).toMatchObject({ ok: true, changes: [{ storeKey: 'counter', version: 1, state: 5 }] })
        expect((await post(op)).body).toEqual(first.body)
        expectError(await post({ ...op, args: { by: 6 } }), 409, 'op_id_reused')
        const refused = await post({ ...op, opId: 2, args: { by: 'five' } })
        expectError(refused, 422, 'action_refused')
        expect(await post({ ...op, opId: 2, args: { by: 'five' } })).toEqual(refused)
        expect((await post({ ...op, opId: 3 })).body).toMatchObject({ ok: true, changes: [{ version: 2, state: 10 }] })
        expect((await post({ ...op, opId: 4, action: 'noop', args: undefined })).body).toMatchObject({ ok: true, changes: [] })
        const { body } = await getState('?stores=counter')
        expect(body.stores).toEqual({ counter: { version: 2, state: 10 } })
      })

      it('gives a malformed or unknown action a 4xx with a code and changes nothing', async () => {
        expectError(await post(action('launch')), 400, 'unknown_action')
        expectError(await post(action('no spaces allowed')), 400, 'invalid_action')
        expectError(await post(action('increment', { storeKey: 'counter', state: 1 })), 400, 'invalid_body')
        expectError(await post(action('increment', { opId: 0 })), 400, 'invalid_op_id')
        expectError(await post(action('increment', { epoch: 'elsewhere' })), 409, 'epoch_changed')
        await expectUnchanged()
      })
    })

    describe('POST /sync with a patch', () => {
      /** Fills `todos` with 40 items (version 1), so a one-item patch is far shorter than the state. */
      const fillTodos = async (clientId: string) => {
        const items = Array.from({ length: 40 }, (_, i) => `todo number ${i}`)
        expect((await post(proposal({ storeKey: 'todos', state: items, clientId }))).status).toBe(200)
        return items
      }

      it('applies a patch on the current version, answers and streams the patch instead of the state', async () => {
        const writer = newClientId()
        const items = await fillTodos(writer)
        const events = await stream('?stores=todos&patches=1')
        expect((await events.nextEvent()).event).toBe('snapshot')
        const answer = await post({ storeKey: 'todos', baseVersion: 1, epoch, patch: [[[3], 'done'], [[40], 'new']], clientId: writer, opId: 2 })
        expect(answer.status).toBe(200)
        expect(answer.body).toEqual({ ok: true, storeKey: 'todos', version: 2, patches: [[[[3], 'done'], [[40], 'new']]] })
        const event = await events.nextEvent()
        expect(event.event).toBe('state')
        expect(JSON.parse(event.data as string)).toEqual({ storeKey: 'todos', version: 2, patch: [[[3], 'done'], [[40], 'new']], writer: writerTag(writer), opId: 2 })
        const { body } = await getState('?stores=todos')
        expect(body.stores).toEqual({ todos: { version: 2, state: [...items.slice(0, 3), 'done', ...items.slice(4), 'new'] } })
      })

      it('sends changes whole to a stream that does not ask for patches, live and replayed, and answers a whole state with whole states', async () => {
        // A client of before deltas: it asks for no patches, and sends whole states.
        const writer = newClientId()
        const items = await fillTodos(writer)
        const events = await stream('?stores=todos')
        const snapshot = await events.nextEvent()
        expect((await post({ storeKey: 'todos', baseVersion: 1, epoch, patch: [[[3], 'done']], clientId: writer, opId: 2 })).status).toBe(200)
        const live = JSON.parse((await events.nextEvent()).data as string) as Record<string, unknown>
        expect(live.patch).toBeUndefined()
        expect(live.state).toEqual([...items.slice(0, 3), 'done', ...items.slice(4)])
        const replayed = await stream('?stores=todos', { 'last-event-id': snapshot.id as string })
        expect(JSON.parse((await replayed.nextEvent()).data as string)).toMatchObject({ version: 2, state: live.state })
        const stale = await post(proposal({ storeKey: 'todos', baseVersion: 1, state: ['mine'], clientId: writer, opId: 3 }))
        expect(stale.body).toEqual({ ok: false, error: 'conflict', storeKey: 'todos', version: 2, state: live.state })
      })

      it('answers 409 with the patches since a stale base, and 409 patch_mismatch (recording nothing) to a patch that does not apply', async () => {
        const writer = newClientId()
        await fillTodos(writer)
        expect((await post({ storeKey: 'todos', baseVersion: 1, epoch, patch: [[[0], 'first']], clientId: writer, opId: 2 })).status).toBe(200)
        const stale = await post({ storeKey: 'todos', baseVersion: 1, epoch, patch: [[[1], 'second']], clientId: writer, opId: 3 })
        expect(stale.status).toBe(409)
        expect(stale.body).toEqual({ ok: false, error: 'conflict', storeKey: 'todos', version: 2, patches: [[[[0], 'first']]] })
        const mismatch = await post({ storeKey: 'todos', baseVersion: 2, epoch, patch: [[[99], 'nowhere']], clientId: writer, opId: 3 })
        expectError(mismatch, 409, 'patch_mismatch')
        // Not recorded: op 3 is still free, for the same op sent whole.
        expect((await post(proposal({ storeKey: 'todos', baseVersion: 2, state: ['whole'], clientId: writer, opId: 3 }))).status).toBe(200)
      })

      it('refuses a malformed patch, or a body with a state and a patch, with a 400 and changes nothing', async () => {
        expectError(await post({ storeKey: 'counter', baseVersion: 0, epoch, patch: { not: 'a patch' }, clientId: newClientId(), opId: 1 }), 400, 'invalid_patch')
        expectError(await post({ storeKey: 'counter', baseVersion: 0, epoch, patch: [[[true], 1]], clientId: newClientId(), opId: 1 }), 400, 'invalid_patch')
        expectError(await post({ storeKey: 'counter', baseVersion: 0, epoch, patch: [[[], 1]], state: 1, clientId: newClientId(), opId: 1 }), 400, 'invalid_body')
        await expectUnchanged()
      })
    })

    describe('GET /sse', () => {
      it('streams with SSE headers, a retry hint and a snapshot first', async () => {
        const sse = await stream()
        expect(sse.response.status).toBe(200)
        expect(sse.response.headers.get('content-type')).toMatch(/^text\/event-stream/)
        expect(sse.response.headers.get('cache-control')).toBe('no-cache, no-transform')
        expect(sse.response.headers.get('x-accel-buffering')).toBe('no')
        expect(sse.response.headers.get('content-encoding')).toBeNull()
        const hint = await sse.next()
        expect(hint.retry).toBeGreaterThan(0)
        const snapshot = await sse.nextEvent()
        expect(snapshot.event).toBe('snapshot')
        expect(snapshot.id).toMatch(/^[A-Za-z0-9]+-0$/)
        expect(JSON.parse(snapshot.data as string)).toEqual({
          stores: {
            counter: { version: 0, state: 0 },
            todos: { version: 0, state: [] },
            profile: { version: 0, state: { name: 'ada' } },
          },
        })
      })

      it('streams each accepted change as a state event, in log order, with its id', async () => {
        const sse = await stream()
        const snapshot = await sse.nextEvent()
        const writer = named('writer')
        await post(proposal({ baseVersion: 0, state: 1, clientId: writer, opId: 1 }))
        await post(proposal({ storeKey: 'todos', baseVersion: 0, state: ['a'], clientId: writer, opId: 2 }))
        await post(proposal({ baseVersion: 0, state: 99 })) // a conflict streams nothing
        await post(proposal({ baseVersion: 1, state: 2, clientId: writer, opId: 3 }))
        const events = [await sse.nextEvent(), await sse.nextEvent(), await sse.nextEvent()]
        expect(events.map((event) => event.event)).toEqual(['state', 'state', 'state'])
        expect(events.map((event) => JSON.parse(event.data as string))).toEqual([
          { storeKey: 'counter', version: 1, state: 1, writer: writerTag(writer), opId: 1 },
          { storeKey: 'todos', version: 1, state: ['a'], writer: writerTag(writer), opId: 2 },
          { storeKey: 'counter', version: 2, state: 2, writer: writerTag(writer), opId: 3 },
        ])
        // The stream shows the public tag only, never the secret that proposals need.
        expect(events.some((event) => (event.data as string).includes(writer))).toBe(false)
        const epoch = (snapshot.id as string).split('-')[0]
        expect(events.map((event) => event.id)).toEqual([`${epoch}-1`, `${epoch}-2`, `${epoch}-3`])
        expect(await sse.drainEvents()).toEqual([])
      })

      it('sends heartbeat comments while idle', async () => {
        const sse = await stream()
        await sse.nextEvent()
        const frame = await sse.next(conformanceConfig.heartbeatMs * 10)
        expect(frame.comment).toBeDefined()
        expect(frame.data).toBeUndefined()
      })

      const writeThree = async () => {
        for (let version = 0; version < 3; version++) await post(proposal({ baseVersion: version, state: version + 1 }))
      }

      it('resumes from the Last-Event-ID header with exactly the missed events and no snapshot', async () => {
        const first = await stream()
        const snapshot = await first.nextEvent()
        await post(proposal({ baseVersion: 0, state: 1 }))
        const seen = await first.nextEvent()
        first.close()
        await post(proposal({ baseVersion: 1, state: 2 }))
        await post(proposal({ baseVersion: 2, state: 3 }))
        const resumed = await stream('', { 'last-event-id': seen.id as string })
        const events = await resumed.drainEvents()
        // The missed events, then the end of the replay.
        expect(events.map((event) => event.event)).toEqual(['state', 'state', 'resumed'])
        expect(stateVersions(events)).toEqual([2, 3])
        const epoch = (snapshot.id as string).split('-')[0]
        expect(events.slice(0, 2).map((event) => event.id)).toEqual([`${epoch}-2`, `${epoch}-3`])
      })

      it('resumes from the lastEventId query the same way', async () => {
        const snapshot = await (await stream()).nextEvent()
        await writeThree()
        const resumed = await stream(`?lastEventId=${encodeURIComponent(snapshot.id as string)}`)
        const events = await resumed.drainEvents()
        expect(stateVersions(events)).toEqual([1, 2, 3])
        expect(events.at(-1)?.event).toBe('resumed')
      })

      it('prefers the header to the query, as on an EventSource reconnect', async () => {
        const snapshot = await (await stream()).nextEvent()
        await writeThree()
        const epoch = (snapshot.id as string).split('-')[0]
        const resumed = await stream(`?lastEventId=${epoch}-0`, { 'last-event-id': `${epoch}-2` })
        const events = await resumed.drainEvents()
        expect(stateVersions(events)).toEqual([3])
      })

      it('sends only the end-of-replay marker when resuming from the current id', async () => {
        await writeThree()
        const snapshot = await (await stream()).nextEvent()
        const resumed = await stream('', { 'last-event-id': snapshot.id as string })
        expect((await resumed.drainEvents()).map((event) => event.event)).toEqual(['resumed'])
      })

      it('sends a snapshot for an unknown, foreign, future (once resumeWaitMs is out), malformed or too-old id', async () => {
        const snapshot = await (await stream()).nextEvent()
        const epoch = (snapshot.id as string).split('-')[0]
        for (let version = 0; version < conformanceConfig.retention + 3; version++) {
          await post(proposal({ baseVersion: version, state: version + 1 }))
        }
        const current = conformanceConfig.retention + 3
        for (const id of ['otherEpoch-1', `${epoch}-999`, 'garbage', '-', `${epoch}-1`, 'x'.repeat(2000)]) {
          const resumed = await stream('', { 'last-event-id': id })
          const first = await resumed.nextEvent()
          expect(first.event, `for id ${id.slice(0, 40)}`).toBe('snapshot')
          expect(first.id).toBe(`${epoch}-${current}`)
          expect(JSON.parse(first.data as string).stores.counter).toEqual({ version: current, state: current })
          expect(await resumed.drainEvents(150)).toEqual([])
        }
        // The oldest id the log still serves replays exactly what was kept.
        const oldest = current - conformanceConfig.retention
        const resumed = await stream('', { 'last-event-id': `${epoch}-${oldest}` })
        const events = await resumed.drainEvents()
        expect(stateVersions(events)).toEqual(
          Array.from({ length: conformanceConfig.retention }, (_, i) => oldest + i + 1),
        )
      })

      it('limits the stream to ?stores=', async () => {
        const sse = await stream('?stores=todos,open.list')
        const snapshot = await sse.nextEvent()
        expect(JSON.parse(snapshot.data as string)).toEqual({ stores: { todos: { version: 0, state: [] } } })
        await post(proposal({ baseVersion: 0, state: 1 }))
        await post(proposal({ storeKey: 'todos', baseVersion: 0, state: ['x'] }))
        await post(proposal({ storeKey: 'open.list', baseVersion: 0, state: [1] }))
        const events = await sse.drainEvents()
        expect(events.map((event) => JSON.parse(event.data as string).storeKey)).toEqual(['todos', 'open.list'])
      })

      it('follows no store at all with an empty ?stores= (a replica that only writes)', async () => {
        const sse = await stream('?stores=')
        const snapshot = await sse.nextEvent()
        expect(JSON.parse(snapshot.data as string)).toEqual({ stores: {} })
        expect(snapshot.id).toMatch(/-/) // still a cursor: its proposals name the epoch
        await post(proposal({ storeKey: 'todos', baseVersion: 0, state: ['x'] }))
        expect(await sse.drainEvents()).toEqual([])
        expect((await getState('?stores=')).body).toMatchObject({ stores: {} })
      })

      it('answers 400 to an invalid store key in ?stores=', async () => {
        const response = await fetch(`${server.url}/sse?stores=ok,bad%20key`)
        expect(response.status).toBe(400)
        expect(await response.json()).toMatchObject({ ok: false, error: 'invalid_store_key' })
      })
    })

    describe('following stores at runtime', () => {
      const subscribe = async (body: unknown): Promise<Answer> => {
        const response = await fetch(`${server.url}/subscribe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
        return { status: response.status, contentType: response.headers.get('content-type'), body: await response.json() }
      }

      it('names the stream in hello, follows a store on it as of its position, then its changes, and stops on unfollow', async () => {
        await post(proposal({ storeKey: 'todos', baseVersion: 0, state: ['a'] }))
        const sse = await stream('?stores=counter&versions=-&patches=1')
        const hello = await sse.nextEvent()
        expect(hello.event).toBe('hello')
        const { streamId } = JSON.parse(hello.data as string) as { streamId: string }
        expect((await sse.nextEvent()).event).toBe('snapshot')
        expect(await subscribe({ streamId, follow: ['todos'] })).toMatchObject({ status: 200, body: { ok: true } })
        const followed = await sse.nextEvent()
        expect([followed.event, JSON.parse(followed.data as string)]).toEqual(['followed', { stores: { todos: { version: 1, state: ['a'] } } }])
        await post(proposal({ storeKey: 'todos', baseVersion: 1, state: ['a', 'b'] }))
        expect(JSON.parse((await sse.nextEvent()).data as string)).toMatchObject({ storeKey: 'todos', version: 2 })
        expect((await subscribe({ streamId, unfollow: ['todos'] })).status).toBe(200)
        await post(proposal({ storeKey: 'todos', baseVersion: 2, state: [] }))
        await post(proposal({ baseVersion: 0, state: 1 }))
        expect(JSON.parse((await sse.nextEvent()).data as string)).toMatchObject({ storeKey: 'counter', version: 1 })
      })

      it('answers 404 unknown_stream for a stream that is not open, in JSON', async () => {
        expectError(await subscribe({ streamId: 'AAAAAAAAAAAA.BBBBBBBBBBBBBBBB', follow: ['todos'] }), 404, 'unknown_stream')
      })

      it('brings whole, after a replay, a followed store whose state the client never got', async () => {
        const { body } = await getState()
        await post(proposal({ storeKey: 'todos', baseVersion: 0, state: ['a'] }))
        const sse = await stream(`?stores=&follow=todos&versions=-&lastEventId=${body.cursor}`)
        const events = await sse.drainEvents()
        expect(events.map((event) => event.event)).toEqual(['hello', 'followed', 'resumed'])
        expect(JSON.parse(events[1]?.data as string)).toEqual({ stores: { todos: { version: 1, state: ['a'] } } })
      })
    })

    describe('POST /presence', () => {
      /** A tab's key, as a tab makes one: 22 base64url characters. */
      const tabKey = (name: string) => name.padEnd(22, '_').slice(0, 22)
      const presence = async (body: unknown, init: { contentType?: string; raw?: boolean; url?: string } = {}): Promise<Answer> => {
        const response = await fetch(`${init.url ?? server.url}/presence`, {
          method: 'POST',
          headers: { 'content-type': init.contentType ?? 'application/json' },
          body: init.raw ? (body as string) : JSON.stringify(body),
        })
        return { status: response.status, contentType: response.headers.get('content-type'), body: await response.json() }
      }
      /** A stream that asked for its id, past its hello and snapshot. */
      const helloStream = async (): Promise<{ sse: RawStream; streamId: string }> => {
        const sse = await stream('?stores=&hello=1')
        const hello = await sse.nextEvent()
        expect(hello.event).toBe('hello')
        const { streamId } = JSON.parse(hello.data as string) as { streamId: string }
        expect((await sse.nextEvent()).event).toBe('snapshot')
        return { sse, streamId }
      }
      /** The next event of `sse`, which must be a `presence` event. */
      const nextPresence = async (sse: RawStream): Promise<Record<string, unknown>> => {
        const event = await sse.nextEvent()
        expect(event.event).toBe('presence')
        return JSON.parse(event.data as string) as Record<string, unknown>
      }

      it('names a stream that asks with ?hello=1 in its first event, and no other', async () => {
        const sse = await stream('?hello=1')
        const hello = await sse.nextEvent()
        expect(hello.event).toBe('hello')
        expect(hello.id).toBeUndefined()
        expect(JSON.parse(hello.data as string)).toEqual({ streamId: expect.stringMatching(/^[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]{1,32}$/) })
        expect((await sse.nextEvent()).event).toBe('snapshot')
        // Each stream its own id; a stream that does not ask is not told.
        const other = await helloStream()
        expect(other.streamId).not.toBe(JSON.parse(hello.data as string).streamId)
        expect((await (await stream()).nextEvent()).event).toBe('snapshot')
        // With no op, a heartbeat: nobody is named, nothing is sent.
        expect(await presence({ streamId: other.streamId, ops: [] })).toMatchObject({ status: 200, body: { ok: true, peers: {} } })
        expect(await other.sse.drainEvents(150)).toEqual([])
      })

      it('shows each stream the room whole as it joins, then the others joining, changing (coalesced) and leaving', async () => {
        const a = await helloStream()
        const b = await helloStream()
        const joined = await presence({ streamId: a.streamId, ops: [{ tab: tabKey('a'), room: 'doc.1', state: { x: 1 } }] })
        expect(joined.status).toBe(200)
        expect(joined.contentType).toMatch(/^application\/json/)
        const aId = (joined.body.peers as Record<string, string>)[tabKey('a')] as string
        expect(joined.body).toEqual({ ok: true, peers: { [tabKey('a')]: aId }, heartbeatMs: expect.any(Number) })
        expect(aId).toMatch(/^[A-Za-z0-9_-]+$/)
        expect(await nextPresence(a.sse)).toEqual({ room: 'doc.1', whole: true, peers: [{ id: aId, principal: '', state: { x: 1 } }] })
        // Her join, as the room hears of it at the tick: to her own stream too.
        expect(await nextPresence(a.sse)).toEqual({ room: 'doc.1', peers: [{ id: aId, principal: '', state: { x: 1 } }] })

        const bJoined = await presence({ streamId: b.streamId, ops: [{ tab: tabKey('b'), room: 'doc.1', state: null }] })
        const bId = (bJoined.body.peers as Record<string, string>)[tabKey('b')] as string
        expect(bId).not.toBe(aId)
        expect(await nextPresence(b.sse)).toEqual({
          room: 'doc.1',
          whole: true,
          peers: [
            { id: aId, principal: '', state: { x: 1 } },
            { id: bId, principal: '', state: null },
          ],
        })
        expect(await nextPresence(a.sse)).toEqual({ room: 'doc.1', peers: [{ id: bId, principal: '', state: null }] })
        expect(await nextPresence(b.sse)).toEqual({ room: 'doc.1', peers: [{ id: bId, principal: '', state: null }] })

        // Five changes in one request: one goes out, the latest; a value sent again unchanged goes out to nobody.
        const moves = [2, 3, 4, 5, 6].map((x) => ({ tab: tabKey('a'), room: 'doc.1', state: { x } }))
        expect((await presence({ streamId: a.streamId, ops: moves })).status).toBe(200)
        expect(await nextPresence(b.sse)).toEqual({ room: 'doc.1', peers: [{ id: aId, principal: '', state: { x: 6 } }] })
        expect(await nextPresence(a.sse)).toEqual({ room: 'doc.1', peers: [{ id: aId, principal: '', state: { x: 6 } }] })
        expect((await presence({ streamId: a.streamId, ops: [{ tab: tabKey('a'), room: 'doc.1', state: { x: 6 } }] })).status).toBe(200)
        expect(await b.sse.drainEvents(150)).toEqual([])

        expect(await presence({ streamId: b.streamId, ops: [{ tab: tabKey('b'), room: 'doc.1', leave: true }] })).toMatchObject({ status: 200, body: { ok: true } })
        expect(await nextPresence(a.sse)).toEqual({ room: 'doc.1', left: [bId] })
        // Gone from the room: B hears no more of it.
        await presence({ streamId: a.streamId, ops: [{ tab: tabKey('a'), room: 'doc.1', state: { x: 7 } }] })
        expect(await nextPresence(a.sse)).toMatchObject({ room: 'doc.1', peers: [{ id: aId, state: { x: 7 } }] })
        expect(await b.sse.drainEvents(150)).toEqual([])
      })

      it('broadcasts to everyone in the room, in order, and names in refused a room whose ops were skipped', async () => {
        const a = await helloStream()
        const b = await helloStream()
        const outside = await helloStream()
        await presence({ streamId: a.streamId, ops: [{ tab: tabKey('a'), room: 'doc.2', state: null }] })
        await presence({ streamId: b.streamId, ops: [{ tab: tabKey('b'), room: 'doc.2', state: null }] })
        await a.sse.drainEvents(150)
        await b.sse.drainEvents(50)
        const sent = await presence({
          streamId: a.streamId,
          ops: [
            { tab: tabKey('a'), room: 'doc.2', broadcast: { emoji: '👍' } },
            { tab: tabKey('a'), room: 'doc.2', broadcast: 'ping' },
          ],
        })
        expect(sent.status).toBe(200)
        expect(sent.body.refused).toBeUndefined()
        const from = (sent.body.peers as Record<string, string>)[tabKey('a')]
        const heard = {
          room: 'doc.2',
          broadcasts: [
            { from, principal: '', data: { emoji: '👍' } },
            { from, principal: '', data: 'ping' },
          ],
        }
        expect(await nextPresence(b.sse)).toEqual(heard)
        expect(await nextPresence(a.sse)).toEqual(heard)

        // A tab broadcasts only to a room it is in: that room is skipped and named, the request's other ops applied.
        const mixed = await presence({
          streamId: outside.streamId,
          ops: [
            { tab: tabKey('o'), room: 'doc.3', state: 'here' },
            { tab: tabKey('o'), room: 'doc.2', broadcast: 'sneak' },
            { tab: tabKey('o'), room: 'doc.2', broadcast: 'again' },
          ],
        })
        expect(mixed.status).toBe(200)
        expect(mixed.body).toEqual({
          ok: true,
          peers: { [tabKey('o')]: expect.any(String) },
          refused: { 'doc.2': { error: 'invalid_body', message: expect.any(String), tabs: [tabKey('o')] } },
          heartbeatMs: expect.any(Number),
        })
        expect(await nextPresence(outside.sse)).toMatchObject({ room: 'doc.3', whole: true, peers: [{ state: 'here' }] })
        expect(await b.sse.drainEvents(150)).toEqual([])

        // A tab is in at most 32 rooms: the 33rd is skipped with room_full.
        const many = await presence({ streamId: outside.streamId, ops: Array.from({ length: 33 }, (_, i) => ({ tab: tabKey('m'), room: `doc.m${i}`, state: i })) })
        expect(many.status).toBe(200)
        expect(many.body.refused).toEqual({ 'doc.m32': { error: 'room_full', message: expect.any(String), tabs: [expect.any(String)] } })
      })

      it('names a refused room even when its name is a property of every object', async () => {
        const { streamId } = await helloStream()
        const rooms = ['constructor', 'toString', 'hasOwnProperty', 'valueOf']
        const answer = await presence({ streamId, ops: rooms.map((room) => ({ tab: tabKey('p'), room, broadcast: 1 })) })
        expect(answer.status).toBe(200)
        expect(Object.keys(answer.body.refused as object).sort()).toEqual([...rooms].sort())
        for (const room of rooms) expect((answer.body.refused as Record<string, unknown>)[room]).toEqual({ error: 'invalid_body', message: expect.any(String), tabs: [expect.any(String)] })
      })

      it('answers 404 unknown_stream for a stream that is not open, in JSON, and applies nothing', async () => {
        const { sse, streamId } = await helloStream()
        const instance = streamId.split('.')[0] as string
        expectError(await presence({ streamId: `${instance}.notAStream`, ops: [{ tab: tabKey('x'), room: 'doc.4', state: 1 }] }), 404, 'unknown_stream')
        // A stream that ended is no longer open.
        sse.close()
        await until(async () => (await presence({ streamId, ops: [] })).status === 404)
        expectError(await presence({ streamId, ops: [{ tab: tabKey('x'), room: 'doc.4', state: 1 }] }), 404, 'unknown_stream')
        const watcher = await helloStream()
        await presence({ streamId: watcher.streamId, ops: [{ tab: tabKey('w'), room: 'doc.4', state: 'w' }] })
        expect(((await nextPresence(watcher.sse)).peers as unknown[]).length).toBe(1)
      })

      it('answers 405 to GET, 415 to any content type but JSON, 400 to a bad body and 413 past the bounds, in JSON', async () => {
        const { streamId } = await helloStream()
        const get = await fetch(`${server.url}/presence`)
        expect(get.status).toBe(405)
        expect(get.headers.get('allow')).toBe('POST')
        expect(await get.json()).toMatchObject({ ok: false, error: 'method_not_allowed' })
        for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx']) {
          expectError(await presence({ streamId, ops: [] }, { contentType }), 415, 'unsupported_media_type')
        }
        expect((await presence({ streamId, ops: [] }, { contentType: 'application/json; charset=utf-8' })).status).toBe(200)
        expectError(await presence('{"streamId":', { raw: true }), 400, 'bad_json')
        expectError(await presence({ streamId: 'no-dot', ops: [] }), 400, 'invalid_body')
        expectError(await presence({ streamId, ops: [{ tab: 'short', room: 'doc.5', state: 1 }] }), 400, 'invalid_body')
        expectError(await presence({ streamId, ops: [{ tab: tabKey('t'), room: '../x', state: 1 }] }), 400, 'invalid_store_key')
        expectError(await presence({ streamId, ops: [{ tab: tabKey('t'), room: 'doc.5', state: 'x'.repeat(2047) }] }), 413, 'presence_too_large')
        expect((await presence({ streamId, ops: [{ tab: tabKey('t'), room: 'doc.5', state: 'x'.repeat(2046) }] })).status).toBe(200)
      })

      it('answers 429 rate_limited with Retry-After past the rate of one stream, not of another', async () => {
        const limited = await target.start({ ...conformanceConfig, maxPresencePerSecond: 1 })
        try {
          const open = async () => {
            const sse = await openRawStream(`${limited.url}/sse?stores=&hello=1`)
            streams.push(sse)
            return (JSON.parse((await sse.nextEvent()).data as string) as { streamId: string }).streamId
          }
          const [first, second] = [await open(), await open()]
          const statuses = await statusesUntilRateLimited(10, () =>
            fetch(`${limited.url}/presence`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamId: first, ops: [] }) }),
          )
          // The burst (twice the rate) goes through, then the stream is refused; another stream is not.
          expect(statuses.slice(0, 2)).toEqual([200, 200])
          expect(statuses).toContain(429)
          expect((await presence({ streamId: second, ops: [] }, { url: limited.url })).status).toBe(200)
        } finally {
          await limited.close()
        }
      })
    })

    describe('hostile input', () => {
      /** A stream that asked for its id with ?hello=1, past its first event, which names it. */
      const streamWithId = async (): Promise<{ sse: RawStream; streamId: string }> => {
        const sse = await stream('?stores=&hello=1')
        const { streamId } = JSON.parse((await sse.nextEvent()).data as string) as { streamId: string }
        return { sse, streamId }
      }
      /** POSTs a fuzzed body to `path`: the server never answers 5xx, and answers every 4xx in JSON with a code. */
      const postFuzzed = async (path: string, text: string): Promise<{ status: number; answer: { ok: boolean; error?: string } }> => {
        const response = await fetch(`${server.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: text,
          signal: AbortSignal.timeout(5000),
        })
        expect(response.status).toBeLessThan(500)
        const answer = (await response.json()) as { ok: boolean; error?: string }
        if (response.status >= 400) expect(typeof answer.error).toBe('string')
        return { status: response.status, answer }
      }

      it(`answers all ${hostileCorpus.length} cases of the corpus as expected (a 4xx JSON error, or a presence 200 naming the rooms refused), changing nothing`, async () => {
        // The presence cases speak for a stream of the server's, which asked for its id.
        const { streamId } = await streamWithId()
        const mismatches: string[] = []
        for (const hostile of hostileCorpus) {
          // Each case is the first op of a client of its own, in the server's epoch.
          const body =
            hostile.body?.replaceAll(EPOCH_PLACEHOLDER, epoch).replaceAll(CLIENT_PLACEHOLDER, newClientId()).replaceAll(STREAM_PLACEHOLDER, streamId) ?? null
          const response = await fetch(`${server.url}${hostile.target}`, {
            method: hostile.method,
            headers: hostile.headers,
            body,
            signal: AbortSignal.timeout(5000), // a hang fails the case
          })
          const text = await response.text()
          let answer: { ok?: unknown; error?: unknown; refused?: Record<string, { error?: unknown }> } = {}
          let code: unknown
          try {
            answer = JSON.parse(text) as typeof answer
            code = answer.error
          } catch {
            code = `not JSON: ${text.slice(0, 60)}`
          }
          if (response.status !== hostile.status || code !== hostile.error) {
            mismatches.push(`${hostile.name}: ${response.status} ${String(code)} (wanted ${hostile.status} ${hostile.error})`)
          } else if (hostile.status === 200) {
            // Exactly the rooms the case expects refused, each with its code.
            const refused = JSON.stringify(Object.entries(answer.refused ?? {}).map(([room, refusal]) => [room, refusal.error]).sort())
            const wanted = JSON.stringify(Object.entries(hostile.refused ?? {}).sort())
            if (answer.ok !== true || refused !== wanted) mismatches.push(`${hostile.name}: 200 refusing ${refused} (wanted ${wanted})`)
          }
        }
        expect(mismatches).toEqual([])
        await expectUnchanged()
        // Every case that joined a room left it: a stream that joins them now finds only itself there.
        const rooms = ['hostile.room', 'hostile.size', 'hostile.proto', 'hostile.fine', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype']
        const { sse: checker, streamId: checkerId } = await streamWithId()
        const ops = rooms.map((room) => ({ tab: 'checkerTabKey_01234567', room, state: 'checker' }))
        const joined = await fetch(`${server.url}/presence`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ streamId: checkerId, ops }) })
        expect(await joined.json()).toEqual({ ok: true, peers: { checkerTabKey_01234567: expect.any(String) }, heartbeatMs: expect.any(Number) })
        const wholes = (await checker.drainEvents()).map((event) => JSON.parse(event.data as string) as { room: string; whole?: true; peers: Array<{ state: unknown }> })
        // In any order: rooms a tick finds changed already (a case's leave) go out before the others.
        const shown = wholes.filter((message) => message.whole).map(({ room, peers }) => [room, peers.map((peer) => peer.state)])
        expect(shown.sort()).toEqual(rooms.map((room) => [room, ['checker']]).sort())
      }, 60_000)

      it('never answers 5xx, and answers every 4xx in JSON with a code, for fuzzed sync bodies', async () => {
        const body = fc.oneof(
          fc.json(),
          fc.string(),
          fc.record(
            {
              storeKey: fc.oneof(fc.string(), fc.constantFrom('counter', 'todos', '__proto__', 'constructor')),
              baseVersion: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null)),
              state: fc.jsonValue(),
              epoch: fc.oneof(fc.string(), fc.constant(epoch), fc.constant('otherepoch')),
              clientId: fc.oneof(fc.string(), fc.constant(named('fuzz'))),
              opId: fc.oneof(fc.integer(), fc.double(), fc.string()),
            },
            { requiredKeys: [] },
          ).map((value) => JSON.stringify(value)),
        )
        await fc.assert(
          fc.asyncProperty(body, async (text) => {
            await postFuzzed('/sync', text)
          }),
          { numRuns: 150, seed: 20261126 },
        )
      }, 60_000)

      it('never answers 5xx, and answers every 4xx in JSON with a code, for fuzzed presence bodies', async () => {
        const { streamId } = await streamWithId()
        const tab = 'fuzzTabKey_0123456789_'
        const op = fc.record(
          {
            tab: fc.oneof(fc.constant(tab), fc.string()),
            room: fc.oneof(fc.constantFrom('doc.fuzz', 'counter', 'constructor', 'toString', '__proto__'), fc.string()),
            state: fc.jsonValue(),
            leave: fc.oneof(fc.constant(true), fc.jsonValue()),
            broadcast: fc.jsonValue(),
          },
          { requiredKeys: [] },
        )
        const body = fc.oneof(
          fc.json(),
          fc.record({ streamId: fc.oneof(fc.constant(streamId), fc.string()), ops: fc.oneof(fc.array(op, { maxLength: 40 }), fc.jsonValue()) }, { requiredKeys: [] }).map((value) =>
            JSON.stringify(value),
          ),
        )
        await fc.assert(
          fc.asyncProperty(body, async (text) => {
            const { status, answer } = await postFuzzed('/presence', text)
            if (status < 400) expect(answer.ok).toBe(true)
          }),
          { numRuns: 150, seed: 20261127 },
        )
        await expectUnchanged()
      }, 60_000)

      it('never answers 5xx to fuzzed stream and state queries', async () => {
        await fc.assert(
          fc.asyncProperty(fc.string(), fc.string(), async (stores, lastEventId) => {
            const query = new URLSearchParams({ stores, lastEventId }).toString()
            for (const path of ['/sse', '/state']) {
              const response = await fetch(`${server.url}${path}?${query}`, { signal: AbortSignal.timeout(5000) })
              expect(response.status).toBeLessThan(500)
              if (response.status >= 400) expect(await response.json()).toMatchObject({ ok: false, error: expect.any(String) })
              else await response.body?.cancel()
            }
          }),
          { numRuns: 75, seed: 20261126 },
        )
      }, 60_000)
    })

    describe('GET /state', () => {
      it('returns the stores and a cursor that /sse continues from with no gap and no overlap', async () => {
        await post(proposal({ baseVersion: 0, state: 1 }))
        const { status, body } = await getState()
        expect(status).toBe(200)
        expect(body.stores).toMatchObject({ counter: { version: 1, state: 1 } })
        expect(typeof body.cursor).toBe('string')
        await post(proposal({ baseVersion: 1, state: 2 }))
        await post(proposal({ baseVersion: 2, state: 3 }))
        const resumed = await stream(`?lastEventId=${encodeURIComponent(body.cursor as string)}`)
        const events = await resumed.drainEvents()
        expect(stateVersions(events)).toEqual([2, 3])
      })

      it('limits the answer to ?stores= and rejects invalid keys', async () => {
        const { body } = await getState('?stores=todos,unknown')
        expect(body.stores).toEqual({ todos: { version: 0, state: [] } })
        expectError(await getState('?stores=%2E%2E'), 400, 'invalid_store_key')
      })
    })

    describe('serving lifecycle', () => {
      const eightMegabytes = JSON.stringify(proposal({ state: 'x'.repeat(8 * 1024 * 1024) }))

      it('answers an 8 MB body with a 413 JSON error that fetch reads, not EPIPE', async () => {
        for (let i = 0; i < 3; i++) {
          const answer = await post(eightMegabytes, { raw: true })
          expectError(answer, 413, 'payload_too_large')
        }
        await expectUnchanged()
      })

      it('answers an 8 MB body with a 413 JSON error that a raw socket reads, with no reset', async () => {
        const { hostname, port, pathname } = new URL(`${server.url}/sync`)
        const head = `POST ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(eightMegabytes)}\r\n\r\n`
        const { text, error } = await new Promise<{ text: string; error: Error | undefined }>((resolve) => {
          const socket = connect(Number(port), hostname)
          let text = ''
          let error: Error | undefined
          socket.on('data', (chunk) => (text += chunk.toString()))
          socket.on('error', (cause) => (error = cause))
          socket.on('close', () => resolve({ text, error }))
          socket.write(head)
          socket.end(eightMegabytes)
        })
        expect(error).toBeUndefined()
        expect(text).toMatch(/^HTTP\/1\.1 413 /)
        expect(text).toMatch(/content-type: application\/json/i)
        expect(JSON.parse(httpBody(text))).toMatchObject({ ok: false, error: 'payload_too_large' })
      })

      it('answers 429 past the rate to anonymous proposals from one address, whatever their clientId', async () => {
        const limited = await target.start({ ...conformanceConfig, maxProposalsPerSecond: 1 })
        try {
          const { cursor } = (await (await fetch(`${limited.url}/state`)).json()) as { cursor: string }
          const limitedEpoch = parseEventId(cursor)?.epoch
          const statuses = await statusesUntilRateLimited(20, (i) =>
            fetch(`${limited.url}/sync`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify(proposal({ storeKey: `open.k${i}`, baseVersion: 0, epoch: limitedEpoch })), // a fresh client id each time
            }),
          )
          // The burst (twice the rate) goes through, then the same address is refused, new ids or not.
          expect(statuses.slice(0, 2)).toEqual([200, 200])
          expect(statuses).toContain(429)
        } finally {
          await limited.close()
        }
      })

      it('after shutdown, answers new streams and proposals 503 shutting_down in JSON, with Retry-After', async () => {
        const open = await stream()
        await open.nextEvent()
        await server.shutdown()
        const refusedStream = await fetch(`${server.url}/sse`)
        expect(refusedStream.status).toBe(503)
        expect(refusedStream.headers.get('content-type')).toMatch(/^application\/json/)
        expect(Number(refusedStream.headers.get('retry-after'))).toBeGreaterThan(0)
        expect(await refusedStream.json()).toMatchObject({ ok: false, error: 'shutting_down' })
        expectError(await post(proposal({ baseVersion: 0, state: 3 })), 503, 'shutting_down')
        // The stream that was open ends with a retry hint, so its client reconnects elsewhere.
        const frames = []
        for (;;) {
          const frame = await open.next(5000).catch(() => undefined)
          if (frame === undefined) break
          frames.push(frame)
        }
        expect(frames.some((frame) => frame.retry !== undefined)).toBe(true)
      })
    })
  })
}
