import { createConnection } from 'node:net'

/** Whether Redis answers at 127.0.0.1:6379. Under CI it must: a missing Redis fails the suite. */
export async function redisAvailable(): Promise<boolean> {
  const up = await new Promise<boolean>((resolve) => {
    const socket = createConnection(6379, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
  if (!up && process.env.CI) throw new Error('Redis is required in CI and not reachable at 127.0.0.1:6379')
  return up
}
