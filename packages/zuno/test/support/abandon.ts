import { connect } from 'node:net'
import type { Principal } from 'zuno/server'
import { until } from './until'

/** An `authenticate` that waits for the test to open its gate, counting the requests it holds. */
export function gatedAuthenticate(principal: Principal = { id: 'patient-user' }) {
  let open = () => {}
  const gate = new Promise<void>((resolve) => (open = resolve))
  let entered = 0
  return {
    entered: () => entered,
    open: () => open(),
    authenticate: async () => {
      entered += 1
      await gate
      return principal
    },
  }
}

/**
 * Sends `count` stream requests that each stop in `authenticate`, closes the connection of every
 * one, waits until the server has seen them all close (`connections()` reaches 0), then opens the gate.
 */
export async function abandonStreams(
  url: string,
  count: number,
  gated: ReturnType<typeof gatedAuthenticate>,
  connections: () => Promise<number>,
): Promise<void> {
  const { hostname, port, pathname } = new URL(`${url}/sse`)
  for (let i = 0; i < count; i++) {
    const socket = connect(Number(port), hostname)
    socket.on('error', () => {})
    socket.write(`GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\n\r\n`)
    await until(() => gated.entered() === i + 1)
    socket.destroy()
  }
  await until(async () => (await connections()) === 0)
  gated.open()
}
