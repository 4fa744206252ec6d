/**
 * The presence baseline: a plain socket.io room broadcast. Each socket joins the room its
 * handshake names; each cursor it emits goes to the others in the room at once, tagged with the
 * sender's id (`socket.to(room).emit`), one broadcast per message: no coalescing.
 */
import { createServer } from 'node:http'
import { Server } from 'socket.io'
import { report } from '../harness/channel'

const httpServer = createServer()
const io = new Server(httpServer, { transports: ['websocket'], serveClient: false })
io.on('connection', (socket) => {
  const room = String(socket.handshake.query.room)
  void socket.join(room)
  socket.on('cursor', (state: unknown) => {
    socket.to(room).emit('cursor', socket.id, state)
  })
})
httpServer.listen(0, '127.0.0.1', () => report({ type: 'ready', port: (httpServer.address() as { port: number }).port }))
process.on('SIGTERM', () => {
  io.close()
  process.exit(0)
})
