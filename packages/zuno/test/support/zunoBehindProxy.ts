import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http'
import { type AuthoritativeUniverse, createNodeHandler, createUniverse, type NodeHandlerOptions, type ServedUniverse, type UniverseOptions } from '../../src/server/index'

/**
 * What the proxy does instead of forwarding plainly: answer with a status, the body a proxy would
 * write (HTML, or nothing) and headers; status 0 drops the connection unanswered, and status 0
 * with `afterForwarding` forwards the request and drops the connection once the server has
 * answered (a lost response: the server applied what the client never hears of).
 */
export interface ProxyAnswer {
  status: number
  body?: string
  contentType?: string
  headers?: Record<string, string>
  afterForwarding?: boolean
}

/** One request as it reached a server: method and path (without the query). */
export interface SeenRequest {
  method: string
  path: string
  url: string
}

async function listen(server: Server, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return (server.address() as { port: number }).port
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
}

/** Serves `universe` with core's node:http handler on an ephemeral port of 127.0.0.1; `close` stops serving and closes the universe. */
export async function serveUniverse(universe: ServedUniverse & Pick<AuthoritativeUniverse, 'close'>, options: NodeHandlerOptions = {}) {
  const handler = createNodeHandler(universe, options)
  const server = createServer(handler)
  const port = await listen(server)
  return {
    url: `http://127.0.0.1:${port}/zuno`,
    async close() {
      handler.close()
      await stop(server)
      await universe.close()
    },
  }
}

/** A real Zuno server (core's node:http handler) on an ephemeral port; `seen` lists what reached it. */
export async function startZuno(options: { handler?: NodeHandlerOptions; universe?: UniverseOptions; port?: number } = {}) {
  const universe = createUniverse({ stores: { counter: 0 }, allowStore: () => true, ...options.universe })
  await universe.ready
  const handler = createNodeHandler(universe, options.handler ?? {})
  const seen: SeenRequest[] = []
  const server = createServer((req, res) => {
    const url = req.url ?? ''
    seen.push({ method: req.method ?? '', path: url.split('?')[0] ?? '', url })
    handler(req, res)
  })
  const port = await listen(server, options.port)
  return {
    universe,
    seen,
    port,
    url: `http://127.0.0.1:${port}/zuno`,
    /** Stops serving; the universe (and its storage) stays open unless `closeUniverse`. */
    async close(closeUniverse = true) {
      handler.close()
      await stop(server)
      if (closeUniverse) await universe.close()
    },
  }
}

/**
 * A real HTTP proxy in front of `target`: every request is forwarded (SSE streamed through), except
 * those `intercept` answers itself, as a load balancer or a body-size limit in front of an app
 * would (an HTML 502, an HTML 413, a bare 404). `intercept` sees the request and its whole body.
 */
export async function startProxy(target: { port: number; host?: string }, intercept: (req: IncomingMessage, body: string) => ProxyAnswer | undefined) {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const answer = intercept(req, body.toString('utf8'))
      if (answer?.status === 0 && answer.afterForwarding === true) {
        const upstream = request({ host: target.host ?? '127.0.0.1', port: target.port, method: req.method, path: req.url, headers: req.headers }, (reply) => {
          reply.resume()
          reply.on('end', () => req.socket.destroy())
        })
        upstream.on('error', () => req.socket.destroy())
        upstream.end(body)
        return
      }
      if (answer?.status === 0) {
        req.socket.destroy()
        return
      }
      if (answer !== undefined) {
        const headers: Record<string, string> = { ...(answer.body === undefined ? {} : { 'content-type': answer.contentType ?? 'text/html' }), ...answer.headers }
        res.writeHead(answer.status, headers).end(answer.body)
        return
      }
      const upstream = request(
        { host: target.host ?? '127.0.0.1', port: target.port, method: req.method, path: req.url, headers: req.headers },
        (reply) => {
          res.writeHead(reply.statusCode ?? 502, reply.headers)
          reply.pipe(res)
        },
      )
      upstream.on('error', () => res.destroy())
      res.on('close', () => upstream.destroy())
      upstream.end(body)
    })
  })
  const port = await listen(server)
  return { url: `http://127.0.0.1:${port}/zuno`, close: () => stop(server) }
}

/** An nginx-style error page, as a proxy answers when it refuses or cannot reach the app. */
export const htmlPage = (status: number, reason: string) =>
  `<html>\r\n<head><title>${status} ${reason}</title></head>\r\n<body>\r\n<center><h1>${status} ${reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`
