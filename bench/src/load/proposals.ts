/**
 * Load for sync throughput: autocannon with 50 connections, each proposing over stores of its
 * own in turn and basing each proposal on the version its last answer gave, so every proposal
 * is accepted by a correct server. The same load drives Zuno and the baselines.
 */
import autocannon from 'autocannon'
import { newClientId, PROTOCOL_HEADER, PROTOCOL_VERSION } from 'zuno'
import { onCommand, report } from '../harness/channel'
import { epochAt } from './epoch'

/** A store the load proposes to, with the version its last answer gave. */
interface Slot {
  storeKey: string
  clientId: string
  version: number
  opId: number
}

/**
 * autocannon clears a connection's context before each request, so stores are handed out from a
 * pool instead: a request takes a free store, its answer updates the version and frees it. With
 * one request in flight per connection, no two requests ever share a store.
 */
let free: Slot[] = []

onCommand(async (command) => {
  if (command.type !== 'run') return
  const connections = command.connections as number
  const stores = connections * (command.storesPerConnection as number)
  const run = command.run as number
  const epoch = await epochAt(command.port as number)
  // Each store has a client of its own, as when many users each edit their own things.
  free = Array.from({ length: stores }, (_, i) => ({ storeKey: `r${run}s${i}`, clientId: newClientId(), version: 0, opId: 0 }))
  const result = await autocannon({
    url: `http://127.0.0.1:${command.port as number}`,
    connections,
    ...(command.rate === undefined ? {} : { overallRate: command.rate as number }),
    duration: (command.durationMs as number) / 1000,
    requests: [
      {
        method: 'POST',
        path: '/zuno/sync',
        // What Zuno's client sends; the baselines ignore the protocol header.
        headers: { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) },
        setupRequest: (req, context: { slot?: Slot }) => {
          const slot = free.pop()
          if (slot === undefined) throw new Error('no free store: a request never got its answer')
          context.slot = slot
          // A client's ops are numbered 1, 2, 3, …; an id is used up only by an accepted op.
          const body = JSON.stringify({
            storeKey: slot.storeKey,
            baseVersion: slot.version,
            epoch,
            state: { n: slot.opId + 1, label: 'benchmark' },
            clientId: slot.clientId,
            opId: slot.opId + 1,
          })
          return { ...req, body }
        },
        onResponse: (status, body, context: { slot?: Slot }) => {
          const slot = context.slot as Slot
          if (status === 200) {
            slot.version = (JSON.parse(body) as { version: number }).version
            slot.opId += 1
          }
          free.unshift(slot)
        },
      },
    ],
  })
  report({
    type: 'result',
    accepted: result['2xx'],
    refused: result.non2xx,
    errors: result.errors + result.timeouts,
    seconds: result.duration,
    latencyP50: result.latency.p50,
    latencyP99: result.latency.p99,
  })
})
report({ type: 'ready' })
