/** Peer: socket.io broadcasting each event to every connected socket. */
import { createServer } from 'node:http'
import { Server } from 'socket.io'
import { report } from '../harness/channel'
import { serveCommands } from './serverCommands'

const httpServer = createServer()
const io = new Server(httpServer, { transports: ['websocket'], serveClient: false })
serveCommands((seq, t) => {
  io.emit('state', { storeKey: 'feed', version: seq, state: { seq, t } })
})
httpServer.listen(0, '127.0.0.1', () => report({ type: 'ready', port: (httpServer.address() as { port: number }).port }))
