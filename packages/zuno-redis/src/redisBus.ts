import { Redis } from 'ioredis'
import { type InstanceBus, notifyEach } from 'zuno/server'

/**
 * The instance bus on Redis pub/sub: one channel per namespace. Publishing goes through the
 * storage's command connection; listening takes a connection of its own (a subscribed connection
 * runs no other command), opened when the first listener comes. ioredis subscribes again by itself
 * after a reconnect; what was published meanwhile is lost, as the bus contract allows, and the
 * listeners hear `lost` once it is subscribed again.
 */
export function createRedisBus(url: string, channel: string, commands: Redis): InstanceBus & { close(): void } {
  const listeners = new Set<(message: string) => void>()
  const lostListeners = new Set<() => void>()
  let subscriber: Redis | undefined
  return {
    async publish(message) {
      await commands.publish(channel, message)
    },
    subscribe(listener, lost) {
      listeners.add(listener)
      if (lost !== undefined) lostListeners.add(lost)
      if (subscriber === undefined) {
        const connection = new Redis(url, { maxRetriesPerRequest: null })
        subscriber = connection
        connection.on('error', () => {}) // reported by the storage's own connections' health
        let connected = false
        connection.on('ready', () => {
          if (!connected) {
            connected = true
            return
          }
          // Reconnected: what was published meanwhile is lost. Once subscribed again, the listeners do it over.
          connection
            .subscribe(channel)
            .then(() => {
              if (subscriber === connection) for (const heard of [...lostListeners]) heard()
            })
            .catch(() => {})
        })
        connection.on('message', (from: string, message: string) => {
          if (from === channel) notifyEach(listeners, message, 'a bus listener')
        })
        connection.subscribe(channel).catch((error: unknown) => console.error('[zuno] could not subscribe to the Redis bus', error))
      }
      return () => {
        listeners.delete(listener)
        if (lost !== undefined) lostListeners.delete(lost)
      }
    },
    close() {
      listeners.clear()
      lostListeners.clear()
      subscriber?.disconnect()
      subscriber = undefined
    },
  }
}
