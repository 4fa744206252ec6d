// Type-checked only: a Node.js replica with the eventsource package.
import { EventSource } from 'eventsource'
import { connect, isZunoError, type ConnectionStatus } from 'zuno'

const universe = connect({ url: 'http://127.0.0.1:3000/zuno', EventSource })
const counter = universe.store<number>('counter', 0)
universe.status.subscribe((status: ConnectionStatus) => console.log(status))
counter.subscribe((value: number) => console.log(value))
counter.set((n) => n + 1).catch((error: unknown) => {
  if (isZunoError(error)) console.error(error.code)
})
universe.close()
