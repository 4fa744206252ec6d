/**
 * One app definition for the server and the clients (`defineZuno`): the server declares its stores
 * from it and enforces its schemas, a client shows its initial states and checks its schemas, and
 * both type `store(key)` from it, refusing keys it does not define (checked by `pnpm typecheck`).
 */
import { createServer, type Server } from 'node:http'
import { EventSource } from 'eventsource'
import * as v from 'valibot'
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest'
import { connect, defineZuno, type ReplicaUniverse, type Store } from 'zuno'
import { type AuthoritativeUniverse, createNodeHandler, createUniverse } from 'zuno/server'
import { until } from './support/until'

interface Todo {
  id: string
  text: string
}

const app = defineZuno({
  stores: {
    counter: { initial: 0, schema: v.pipe(v.number(), v.minValue(0)) },
    todos: { initial: [] as Todo[] },
  },
})

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function serve(): Promise<{ server: AuthoritativeUniverse<{ counter: number; todos: Todo[] }, never>; url: string }> {
  const server = createUniverse({ app })
  const handler = createNodeHandler(server)
  const http: Server = createServer(handler)
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => new Promise((resolve) => http.close(resolve)), () => handler.close(), () => server.close())
  const { port } = http.address() as { port: number }
  return { server, url: `http://127.0.0.1:${port}/zuno` }
}

describe('an app defined once', () => {
  it('declares the server stores with their initial states, and refuses what their schemas refuse', async () => {
    const { server } = await serve()
    await server.ready
    expect(server.snapshot().stores).toEqual({ counter: { version: 0, state: 0 }, todos: { version: 0, state: [] } })
    await expect(server.store('counter').set(-1)).rejects.toMatchObject({ code: 'invalid_state' })
    await server.store('todos').set([{ id: 'a', text: 'server' }])
    expect(server.store('todos').get()).toEqual([{ id: 'a', text: 'server' }])
  })

  it('gives a client the initial states and the schemas, and syncs typed stores both ways', async () => {
    const { server, url } = await serve()
    const client = connect({ app, url, EventSource })
    cleanups.push(() => client.close())
    expect(client.store('counter').get()).toBe(0) // before anything arrives: the app's initial state
    await until(() => client.status.get() === 'connected')
    await expect(client.store('counter').set(-5)).rejects.toMatchObject({ code: 'invalid_state' })
    await client.store('counter').set((n) => n + 2)
    expect(server.store('counter').get()).toBe(2)
    await server.store('todos').set([{ id: 'b', text: 'from the server' }])
    await until(() => client.store('todos').get().length === 1)
  })

  it('types every store from the definition, and a key it does not define does not compile', () => {
    const server = createUniverse({ app })
    const client = connect({ app, url: 'http://127.0.0.1:9/zuno', EventSource })
    cleanups.push(() => client.close(), () => server.close())
    expectTypeOf(server.store('counter')).toEqualTypeOf<Store<number>>()
    expectTypeOf(client.store('todos').get()).toEqualTypeOf<Todo[]>()
    expectTypeOf(client).toMatchTypeOf<ReplicaUniverse<{ counter: number; todos: Todo[] }, never>>()
    // @ts-expect-error: `nope` is not a store of the app
    expect(() => server.store('nope')).not.toThrow()
    // @ts-expect-error: `nope` is not a store of the app
    client.store('nope')
    // Never called: what matters is that it does not compile.
    // @ts-expect-error: the counter holds numbers
    const wrongType = () => client.store('counter').set('one')
    expect(typeof wrongType).toBe('function')
  })
})
