/**
 * Many SSE subscribers in one process, each following a few documents of many (the many-stores
 * suite), or all the same one (its single-store baseline). Each names its documents in `?stores=`,
 * chosen by a seeded generator; the report says how many subscribers follow each document, so the
 * suite knows how many deliveries each write must reach.
 */
import type { Socket } from 'node:net'
import { monotonicMs, onCommand, report } from '../harness/channel'
import { seededRandom } from '../harness/random'
import { Deliveries, inBatches } from './deliveries'
import { openSseSocket, stateEventsInto } from './sseSocket'

const deliveries = new Deliveries()
const open: Socket[] = []

onCommand(async (command) => {
  if (command.type === 'open') {
    const started = monotonicMs()
    const next = seededRandom(command.seed as number)
    const docs = command.docs as number
    const each = command.each as number
    const single = command.single as string | undefined
    const followers = new Map<string, number>()
    const paths = Array.from({ length: command.count as number }, () => {
      const keys = new Set<string>()
      if (single !== undefined) keys.add(single)
      else while (keys.size < each) keys.add(`doc:${Math.floor(next() * docs)}`)
      for (const key of keys) followers.set(key, (followers.get(key) ?? 0) + 1)
      return `/zuno/sse?stores=${[...keys].join(',')}`
    })
    await inBatches(paths, 200, async (path) => {
      open.push(await openSseSocket(command.port as number, path, stateEventsInto(deliveries)))
    })
    report({ type: 'opened', ms: monotonicMs() - started, count: open.length, followers: [...followers] })
  } else if (command.type === 'wait') {
    const expected = command.expected as number[]
    const result = await deliveries.wait(command.first as number, expected.length, expected, command.timeoutMs as number)
    report({ type: 'delivered', ...result })
  } else if (command.type === 'close') {
    for (const socket of open.splice(0)) socket.destroy()
    report({ type: 'closed' })
  }
})
report({ type: 'ready' })
