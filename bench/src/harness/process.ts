/** Starts a benchmark's child processes, pinned to a core, and exchanges messages with them. */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Message } from './channel'
import { compiled } from './compile'

const benchRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const bunBinary = join(benchRoot, 'node_modules', '.bin', 'bun')

/** `/proc` counts CPU time in ticks of 1/100 s on Linux (USER_HZ). */
const CLOCK_TICKS = 100

/** The core servers run on; load generators run on the other one. */
export const SERVER_CORE = 0
export const LOAD_CORE = 1
/** Whether processes can be pinned to separate cores here. */
export const canPin = availableParallelism() >= 2 && existsSync('/usr/bin/taskset')

/** How to start a child. */
export interface ChildSpec {
  /** A label for errors and progress. */
  name: string
  /** A script under `bench/src`, such as `servers/rawSse.ts`. */
  script: string
  runtime?: 'node' | 'bun'
  /** Which core to pin it to. */
  core: number
  args?: string[]
  env?: Record<string, string>
  /** Extra Node flags, such as `--expose-gc`. */
  nodeFlags?: string[]
}

/** A running child process that speaks the line protocol of `channel.ts`. */
export class Child {
  readonly #process: ChildProcess
  readonly #inbox: Message[] = []
  readonly #waiters: Array<{ type: string; resolve: (message: Message) => void; reject: (error: Error) => void }> = []
  #exited: Error | undefined
  #stderr = ''

  constructor(readonly spec: ChildSpec) {
    // Bun runs TypeScript as it is; Node runs it compiled (see `compiled`).
    const command =
      spec.runtime === 'bun'
        ? [bunBinary, join(benchRoot, 'src', spec.script)]
        : [process.execPath, ...(spec.nodeFlags ?? []), compiled(spec.script)]
    const pinned = canPin ? ['/usr/bin/taskset', '-c', String(spec.core), ...command] : command
    this.#process = spawn(pinned[0] as string, [...pinned.slice(1), ...(spec.args ?? [])], {
      cwd: benchRoot,
      env: { ...process.env, NODE_ENV: 'production', ...spec.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    createInterface({ input: this.#process.stdout! }).on('line', (line) => this.#receive(line))
    this.#process.stderr!.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-4000)
    })
    this.#process.on('exit', (code, signal) => {
      this.#exited = new Error(`${spec.name} exited (${signal ?? code}): ${this.#stderr.trim().slice(-1500)}`)
      for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#exited)
    })
  }

  /** Sends a command. */
  send(message: Message): void {
    this.#process.stdin!.write(`${JSON.stringify(message)}\n`)
  }

  /** The next message of this type (earlier ones of other types stay in the inbox). */
  next<T extends { type: string } = Message>(type: string, timeoutMs = 120_000): Promise<T> {
    const index = this.#inbox.findIndex((message) => message.type === type)
    if (index >= 0) return Promise.resolve(this.#inbox.splice(index, 1)[0] as T)
    if (this.#exited) return Promise.reject(this.#exited)
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1)
        reject(new Error(`${this.spec.name}: no "${type}" within ${timeoutMs} ms. ${this.#stderr.trim().slice(-1500)}`))
      }, timeoutMs)
      const waiter = {
        type,
        resolve: (message: Message) => {
          clearTimeout(timer)
          resolve(message as T)
        },
        reject: (error: Error) => {
          clearTimeout(timer)
          reject(error)
        },
      }
      this.#waiters.push(waiter)
    })
  }

  /** Sends a command and waits for its answer. */
  async ask<T extends { type: string } = Message>(message: Message, answer: string, timeoutMs?: number): Promise<T> {
    this.send(message)
    return this.next<T>(answer, timeoutMs)
  }

  /**
   * CPU time the child has used so far, in seconds (user + system, from `/proc`); `undefined` where
   * there is no `/proc`. Under `taskset` the child is the exec'd command itself, so this is the server's.
   */
  cpuSeconds(): number | undefined {
    const pid = this.#process.pid
    if (pid === undefined) return undefined
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      // Fields after the command name (which may hold spaces), counted from field 3: utime is 14, stime 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
    } catch {
      return undefined
    }
  }

  /**
   * Time the child's main thread spent runnable but waiting for its core, in seconds
   * (`/proc/<pid>/schedstat`); `undefined` where there is none. Other processes on the core (not
   * the benchmark's) show here: a server that waited is not one that was slow.
   */
  waitSeconds(): number | undefined {
    const pid = this.#process.pid
    if (pid === undefined) return undefined
    try {
      return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9
    } catch {
      return undefined
    }
  }

  /** Stops the child (SIGTERM, then SIGKILL after 3 s) and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.#process.exitCode !== null || this.#process.signalCode !== null) return
    const exited = new Promise<void>((resolve) => this.#process.once('exit', () => resolve()))
    this.#process.kill('SIGTERM')
    const timer = setTimeout(() => this.#process.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(timer)
  }

  #receive(line: string): void {
    let message: Message
    try {
      message = JSON.parse(line) as Message
    } catch {
      return // a stray log line
    }
    if (message.type === 'error') {
      console.error(`\n[${this.spec.name}] ${String(message.message)}`)
    }
    const index = this.#waiters.findIndex((waiter) => waiter.type === message.type)
    if (index >= 0) this.#waiters.splice(index, 1)[0]!.resolve(message)
    else this.#inbox.push(message)
  }
}

/** Starts a child and waits for its `ready` message. */
export async function start<T extends { type: string } = Message>(spec: ChildSpec): Promise<{ child: Child; ready: T }> {
  const child = new Child(spec)
  const ready = await child.next<T>('ready', 60_000)
  return { child, ready }
}

/** A port that is free now (the OS picks it). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net')
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}
