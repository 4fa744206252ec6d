/**
 * The raw SSE baseline, whatever serves it: open streams in a set, and one writer that encodes
 * each event once and writes it to every stream.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { serveCommands } from './serverCommands'

const subscribers = new Set<ServerResponse>()

/** Opens a stream on a request: the route handler of the baselines. */
export function openRawStream(req: IncomingMessage, res: ServerResponse): void {
  req.socket.setNoDelay(true)
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
  res.write('retry: 1000\n\n')
  subscribers.add(res)
  res.on('close', () => subscribers.delete(res))
}

/** Runs the writer on the runner's commands. */
export function serveRawWriter(): void {
  serveCommands((seq, t) => {
    const data = JSON.stringify({ storeKey: 'feed', version: seq, state: { seq, t } })
    const frame = Buffer.from(`id: ${seq}\nevent: state\ndata: ${data}\n\n`)
    for (const res of subscribers) res.write(frame)
  })
}
