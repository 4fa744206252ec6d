/**
 * Review probe (second review of actions): `unknown_action` became a recorded refusal (68dffa4).
 * Every client released before it treats the refusal as unrecorded and reuses the op's id.
 */
import { createServer, type Server } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { defineZuno } from 'zuno'
import { createNodeHandler, createUniverse } from 'zuno/server'
import { newClientId } from '../src/id'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const app = defineZuno({ stores: { counter: { initial: 0 } }, actions: { increment: { run: (tx) => tx.set('counter', (n) => n + 1) } } })

describe('review 2: a client of the previous release against this server', () => {
  // Problem: a cached page of the previous release calls an action the deploy removed. The server
  // records unknown_action under its opId; that client (RECORDED_REFUSALS without unknown_action)
  // frees the id and gives it to its next op, which the server refuses op_id_reused: a legitimate
  // write refused. No protocol version tells the server which rule the client follows.
  it.fails("does not refuse the old client's next op after an unknown action", async () => {
    const universe = createUniverse({ app })
    await universe.ready
    const handler = createNodeHandler(universe)
    const server: Server = createServer(handler)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => {
      handler.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await universe.close()
    })
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/zuno/sync`
    const post = async (body: unknown) => {
      const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      return (await response.json()) as Record<string, unknown>
    }
    const clientId = newClientId()
    const gone = await post({ action: 'removedByTheDeploy', epoch: universe.epoch, clientId, opId: 1 })
    expect(gone.error).toBe('unknown_action')
    // The old client frees opId 1 (an unrecorded refusal, as its RECORDED_REFUSALS says) and reuses it.
    const next = await post({ action: 'increment', epoch: universe.epoch, clientId, opId: 1 })
    // Observed: { error: 'op_id_reused' }; the counter stays 0.
    expect(next).toMatchObject({ ok: true })
  })
})
