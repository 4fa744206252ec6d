import { Redis } from 'ioredis'
import { formatEventId, type StoreState } from 'zuno'
import type { CommitOutcome, CommittedEvent, Proposal, Storage, StorageImage } from 'zuno/server'

/** Options of {@link createRedisStorage}. */
export interface RedisStorageOptions {
  /** Keys are prefixed `{namespace}:`; one namespace per app (the braces keep a cluster slot). */
  namespace: string
  /** Default `redis://127.0.0.1:6379`. */
  url?: string
  /** How many events the Stream keeps (approximately) for resuming clients. Default 10,000. */
  retention?: number
  /** How long `(clientId, opId)` answers are kept for idempotent retries, in seconds. Default one day. */
  idempotencyTtlSeconds?: number
  /** How many recent events a starting instance loads, to serve resumes at once. Default 1,000. */
  recent?: number
}

/**
 * The one atomic step, in Lua: compare the version, write the state, record the idempotency
 * answer, append to the Stream. Returns {'duplicate', answer} | {'conflict', version, state} |
 * {'accepted', version, seq}.
 */
const COMMIT = `
local answered = redis.call('GET', KEYS[2])
if answered then return {'duplicate', answered} end
local version = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if version ~= tonumber(ARGV[2]) then
  return {'conflict', tostring(version), redis.call('HGET', KEYS[1], 's') or ''}
end
local next = version + 1
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'v', next, 's', ARGV[3])
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('SET', KEYS[2], next .. ':' .. ARGV[3], 'EX', ARGV[6])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '0-' .. seq, 'k', ARGV[1], 'v', next, 's', ARGV[3], 'c', ARGV[4], 'o', ARGV[5])
return {'accepted', tostring(next), tostring(seq)}
`

type CommitReply = [kind: 'duplicate', answer: string] | [kind: 'conflict' | 'accepted', a: string, b: string]

/**
 * Storage on Redis, for many server instances sharing one world. Commits are one Lua script; the
 * log is a Redis Stream whose entry ids are the event sequence numbers, so a client can resume on
 * any instance; every instance fans out from the Stream (never from pub/sub), in log order.
 */
export function createRedisStorage(options: RedisStorageOptions): Storage {
  const url = options.url ?? 'redis://127.0.0.1:6379'
  const ns = `{${options.namespace}}`
  const keys = {
    epoch: `${ns}:epoch`,
    seq: `${ns}:seq`,
    log: `${ns}:log`,
    stores: `${ns}:stores`,
    store: (storeKey: string) => `${ns}:s:${storeKey}`,
    op: (clientId: string, opId: number) => `${ns}:op:${clientId}:${opId}`,
  }
  const retention = options.retention ?? 10_000
  const ttl = options.idempotencyTtlSeconds ?? 86_400
  const commands = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 })
  // Sent once, then run by its SHA: the script is the hot path of every proposal.
  commands.defineCommand('zunoCommit', { numberOfKeys: 5, lua: COMMIT })
  const commitScript = (commands as unknown as { zunoCommit(...args: Array<string | number>): Promise<CommitReply> }).zunoCommit.bind(commands)
  const reader = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: null })
  const listeners = new Set<(event: CommittedEvent) => void>()
  let epoch = ''
  let lastSeq = 0
  let reading = false
  let closed = false

  const toEvent = (seq: number, fields: string[]): CommittedEvent => {
    const map = new Map<string, string>()
    for (let i = 0; i < fields.length; i += 2) map.set(fields[i] as string, fields[i + 1] as string)
    return {
      storeKey: map.get('k') as string,
      version: Number(map.get('v')),
      state: JSON.parse(map.get('s') as string),
      clientId: map.get('c') as string,
      opId: Number(map.get('o')),
      seq,
      id: formatEventId(epoch, seq),
    }
  }

  /** Follows the Stream from `lastSeq` and hands each event to the listeners, in order. */
  const follow = async () => {
    if (reading) return
    reading = true
    while (!closed) {
      let reply: Array<[string, Array<[string, string[]]>]> | null
      try {
        reply = (await reader.xread('COUNT', 1000, 'BLOCK', 5000, 'STREAMS', keys.log, `0-${lastSeq}`)) as typeof reply
      } catch (error) {
        if (closed) break
        console.error('[zuno-redis] reading the stream failed; retrying', error)
        await new Promise((resolve) => setTimeout(resolve, 500))
        continue
      }
      for (const [, entries] of reply ?? []) {
        for (const [id, fields] of entries) {
          const seq = Number(id.slice(id.indexOf('-') + 1))
          if (seq <= lastSeq) continue
          lastSeq = seq
          const event = toEvent(seq, fields)
          for (const listener of listeners) listener(event)
        }
      }
    }
  }

  return {
    async load(): Promise<StorageImage> {
      await Promise.all([commands.connect(), reader.connect()])
      await commands.set(keys.epoch, Math.random().toString(36).slice(2) + Date.now().toString(36), 'NX')
      epoch = (await commands.get(keys.epoch)) as string
      // The stores and the sequence number as of one moment (MULTI is atomic on the server).
      const storeKeys = await commands.smembers(keys.stores)
      const pipeline = commands.multi().get(keys.seq)
      for (const storeKey of storeKeys) pipeline.hmget(keys.store(storeKey), 'v', 's')
      const results = (await pipeline.exec()) ?? []
      const seq = Number(results[0]?.[1] ?? 0)
      const stores = new Map<string, StoreState>()
      storeKeys.forEach((storeKey, i) => {
        const [version, state] = results[i + 1]?.[1] as [string, string]
        stores.set(storeKey, { version: Number(version), state: JSON.parse(state) })
      })
      const count = options.recent ?? 1000
      const latest = (await commands.xrevrange(keys.log, `0-${seq}`, '-', 'COUNT', count)) as Array<[string, string[]]>
      const recent = latest.reverse().map(([id, fields]) => toEvent(Number(id.slice(id.indexOf('-') + 1)), fields))
      // Contiguous up to `seq`, or not at all (the Stream may have been trimmed in between).
      const contiguous = recent.every((event, i) => event.seq === seq - recent.length + 1 + i) ? recent : []
      lastSeq = seq
      return { epoch, seq, stores, recent: contiguous }
    },

    async commit(proposal: Proposal): Promise<CommitOutcome> {
      const state = JSON.stringify(proposal.state)
      const reply = await commitScript(
        keys.store(proposal.storeKey),
        keys.op(proposal.clientId, proposal.opId),
        keys.seq,
        keys.log,
        keys.stores,
        proposal.storeKey,
        proposal.baseVersion,
        state,
        proposal.clientId,
        proposal.opId,
        ttl,
        retention,
      )
      if (reply[0] === 'duplicate') {
        const colon = reply[1].indexOf(':')
        return { type: 'duplicate', version: Number(reply[1].slice(0, colon)), state: JSON.parse(reply[1].slice(colon + 1)) }
      }
      if (reply[0] === 'conflict') {
        return { type: 'conflict', version: Number(reply[1]), state: reply[2] === '' ? undefined : JSON.parse(reply[2]) }
      }
      const seq = Number(reply[2])
      const event: CommittedEvent = {
        storeKey: proposal.storeKey,
        version: Number(reply[1]),
        state: proposal.state,
        clientId: proposal.clientId,
        opId: proposal.opId,
        seq,
        id: formatEventId(epoch, seq),
      }
      return { type: 'accepted', event }
    },

    onCommit(listener) {
      listeners.add(listener)
      void follow()
      return () => {
        listeners.delete(listener)
      }
    },

    async close() {
      closed = true
      listeners.clear()
      reader.disconnect()
      await commands.quit().catch(() => {})
    },
  }
}
