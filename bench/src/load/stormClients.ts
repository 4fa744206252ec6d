/**
 * SSE clients that resume: each remembers the last event id, reconnects 20 ms after losing its
 * stream (sending `Last-Event-ID`), and checks that versions of `feed` arrive one by one with no
 * gap. "Current" means it saw the version the runner names, on an open stream.
 */
import { type ClientRequest, request } from 'node:http'
import { monotonicMs, onCommand, report } from '../harness/channel'

const RETRY_MS = 20
/** Connection attempts in flight at once, the same for fresh connects and for the storm. */
const MAX_CONNECTING = 128

class Client {
  lastId: string | undefined
  version = 0
  gaps = 0
  snapshots = 0
  resumes = 0
  connected = false
  /** When this client reached the awaited version. */
  currentAt = 0
  req: ClientRequest | undefined
  closed = false

  constructor(readonly port: number) {}

  connect(): void {
    if (this.closed) return
    acquire(() => {
      const headers: Record<string, string> = { accept: 'text/event-stream' }
      if (this.lastId !== undefined) headers['last-event-id'] = this.lastId
      let released = false
      const release = () => {
        if (!released) {
          released = true
          releaseSlot()
        }
      }
      const req = request({ host: '127.0.0.1', port: this.port, path: '/zuno/sse?stores=feed', agent: false, headers }, (res) => {
        release()
        if (res.statusCode !== 200) {
          res.resume()
          return this.retry()
        }
        this.connected = true
        res.setEncoding('utf8')
        let buffer = ''
        res.on('data', (chunk: string) => {
          buffer += chunk
          let end = buffer.indexOf('\n\n')
          while (end >= 0) {
            this.frame(buffer.slice(0, end))
            buffer = buffer.slice(end + 2)
            end = buffer.indexOf('\n\n')
          }
        })
        res.on('close', () => {
          this.connected = false
          this.retry()
        })
      })
      req.on('error', () => {
        release()
        this.connected = false
        this.retry()
      })
      req.end()
      this.req = req
    })
  }

  retry(): void {
    if (!this.closed) setTimeout(() => this.connect(), RETRY_MS)
  }

  frame(text: string): void {
    let id: string | undefined
    let event = 'message'
    let data = ''
    for (const line of text.split('\n')) {
      if (line.startsWith('id: ')) id = line.slice(4)
      else if (line.startsWith('event: ')) event = line.slice(7)
      else if (line.startsWith('data: ')) data = line.slice(6)
    }
    if (event === 'snapshot') {
      this.snapshots += 1
      const stores = (JSON.parse(data) as { stores: Record<string, { version: number }> }).stores
      this.version = stores.feed?.version ?? 0
    } else if (event === 'state') {
      const { version } = JSON.parse(data) as { version: number }
      if (version !== this.version + 1) this.gaps += 1
      this.version = version
    } else if (event === 'resumed') {
      this.resumes += 1
    }
    if (id !== undefined) this.lastId = id
    if (this.currentAt === 0 && awaited !== undefined && this.version >= awaited) {
      this.currentAt = monotonicMs()
      checkAll()
    }
  }
}

let connecting = 0
const queue: Array<() => void> = []
function acquire(start: () => void): void {
  if (connecting < MAX_CONNECTING) {
    connecting += 1
    start()
  } else {
    queue.push(start)
  }
}
function releaseSlot(): void {
  const next = queue.shift()
  if (next !== undefined) next()
  else connecting -= 1
}

let clients: Client[] = []
let awaited: number | undefined
let onAllCurrent: (() => void) | undefined

function checkAll(): void {
  if (onAllCurrent !== undefined && clients.every((client) => client.currentAt > 0)) onAllCurrent()
}

onCommand(async (command) => {
  if (command.type === 'open') {
    clients = Array.from({ length: command.count as number }, () => new Client(command.port as number))
    awaited = command.version as number
    report({ type: 'opening', at: monotonicMs() })
    for (const client of clients) client.connect()
  } else if (command.type === 'await') {
    if (awaited !== command.version) {
      awaited = command.version as number
      for (const client of clients) client.currentAt = client.version >= awaited ? monotonicMs() : 0
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, command.timeoutMs as number)
      onAllCurrent = () => {
        clearTimeout(timer)
        resolve()
      }
      checkAll()
    })
    onAllCurrent = undefined
    const current = clients.filter((client) => client.currentAt > 0)
    report({
      type: 'current',
      current: current.length,
      lastCurrentAt: Math.max(...current.map((client) => client.currentAt)),
      gaps: clients.reduce((sum, client) => sum + client.gaps, 0),
      snapshots: clients.reduce((sum, client) => sum + client.snapshots, 0),
      resumes: clients.reduce((sum, client) => sum + client.resumes, 0),
    })
  } else if (command.type === 'close') {
    for (const client of clients) {
      client.closed = true
      client.req?.destroy()
    }
    clients = []
    report({ type: 'closed' })
  }
})
report({ type: 'ready' })
