import { Redis } from 'ioredis'
import { type InstanceBus, notifyEach } from 'zuno/server'

/**
 * The instance bus on Redis pub/sub: one channel per namespace. Publishing goes through the
 * storage's command connection; listening takes a connection of its own (a subscribed connection
 * runs no other command), opened when the first listener comes. ioredis subscribes again by itself
 * after a reconnect; what was published meanwhile is lost, as the bus contract allows.
 */
export function createRedisBus(url: string, channel: string, commands: Redis): InstanceBus & { close(): void } {
  const listeners = new Set<(message: string) => void>()
  let subscriber: Redis | undefined
  return {
    async publish(message) {
      await commands.publish(channel, message)
    },
    subscribe(listener) {
      listeners.add(listener)
      if (subscriber === undefined) {
        subscriber = new Redis(url, { maxRetriesPerRequest: null })
        subscriber.on('error', () => {}) // reported by the storage's own connections' health
        subscriber.on('message', (from: string, message: string) => {
          if (from === channel) notifyEach(listeners, message, 'a bus listener')
        })
        subscriber.subscribe(channel).catch((error: unknown) => console.error('[zuno] could not subscribe to the Redis bus', error))
      }
      return () => {
        listeners.delete(listener)
      }
    },
    close() {
      listeners.clear()
      subscriber?.disconnect()
      subscriber = undefined
    },
  }
}
