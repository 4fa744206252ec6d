/**
 * The packages as a newcomer gets them: packed with pnpm (as a release would), installed with npm
 * into a fresh app outside this repository, then type-checked, bundled for a browser and run.
 * Nothing here is skipped: a failure means someone outside the monorepo would hit it too.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Packed, packAll, root } from '../../scripts/pack.mjs'

/** What the app takes from the registry: versions this repository is tested with (docs: toolchain). */
const registryDependencies = {
  esbuild: '0.28.2',
  eventsource: '4.1.1',
  express: '5.3.0',
  react: '19.3.1',
  'react-dom': '19.3.1',
  typescript: '5.9.3',
  '@types/express': '5.0.6',
  '@types/node': '20.19.43',
  '@types/react': '19.3.0',
  '@types/react-dom': '19.3.0',
}

const run = promisify(execFile)
let work = ''
let app = ''
let packed: Packed[] = []
const children = new Set<ChildProcess>()

/** Runs a command in the app; on failure the error carries its output, which is what one needs to see. */
async function inApp(command: string, args: string[], timeout = 120_000) {
  try {
    return await run(command, args, { cwd: app, timeout, maxBuffer: 16 * 1024 * 1024, env: cleanEnv() })
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string }
    throw new Error(`${command} ${args.join(' ')} failed:\n${stdout}\n${stderr}`)
  }
}

/** The environment without what pnpm and vitest set for this workspace, so npm and node behave as in a fresh shell. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(npm_package_|npm_lifecycle_|PNPM_|VITEST|NODE_OPTIONS$|NODE_PATH$)/i.test(name)) continue
    env[name] = value
  }
  return env
}

/** Starts a Node.js script in the app; `waitFor` waits for one of the JSON lines it prints on stdout. */
function startScript(script: string, args: string[] = []) {
  const child = spawn(process.execPath, [script, ...args], { cwd: app, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  child.on('exit', () => children.delete(child))
  let stderr = ''
  child.stderr?.on('data', (chunk) => {
    stderr += chunk
  })
  const lines: unknown[] = []
  const waiters: Array<() => void> = []
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (!line.startsWith('{')) return // anything else a dependency prints is not ours to read
    lines.push(JSON.parse(line))
    for (const wake of waiters.splice(0)) wake()
  })
  /** The first line (so far or to come) for which `match` is true; rejects with the script's stderr if it exits first. */
  const waitFor = <T>(match: (line: any) => boolean, timeout = 20_000) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const found = lines.find(match)
        if (found !== undefined) return done(() => resolve(found as T))
        waiters.push(check)
      }
      const onExit = (code: number | null) => done(() => reject(new Error(`${script} exited (${code}) before the expected output:\n${stderr}`)))
      const timer = setTimeout(() => done(() => reject(new Error(`${script}: no expected output in ${timeout} ms; stderr:\n${stderr}`))), timeout)
      const done = (settle: () => void) => {
        clearTimeout(timer)
        child.off('exit', onExit)
        settle()
      }
      child.on('exit', onExit)
      check()
    })
  return { child, waitFor }
}

beforeAll(async () => {
  if (!existsSync(join(root, 'packages/zuno/dist/index.js'))) throw new Error('The packages are not built: run `pnpm build` first')
  // Outside the repository, so nothing resolves through the workspace's node_modules by accident.
  work = mkdtempSync(join(tmpdir(), 'zuno-packaging-'))
  app = join(work, 'app')
  mkdirSync(app)
  packed = packAll(join(work, 'tarballs'))
  cpSync(join(root, 'packaging/app'), app, { recursive: true })
  const tarballs = Object.fromEntries(packed.map(({ name, tarball }) => [name, `file:${tarball}`]))
  const manifest = { name: 'zuno-newcomer-app', private: true, type: 'module', dependencies: { ...tarballs, ...registryDependencies } }
  writeFileSync(join(app, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  await inApp('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], 240_000)
}, 300_000)

afterAll(() => {
  for (const child of children) child.kill('SIGKILL')
  if (work !== '') rmSync(work, { recursive: true, force: true })
})

describe('the packages, installed from their tarballs into a fresh app', () => {
  it('installs every package with real version ranges and its LICENSE', () => {
    expect(packed.map((p) => p.name).sort()).toEqual(['zuno', 'zuno-elysia', 'zuno-express', 'zuno-react', 'zuno-redis'])
    const license = readFileSync(join(root, 'LICENSE'), 'utf8')
    for (const { name } of packed) {
      const installed = join(app, 'node_modules', name)
      expect(readFileSync(join(installed, 'package.json'), 'utf8'), name).not.toContain('workspace:')
      expect(readFileSync(join(installed, 'LICENSE'), 'utf8'), `${name}/LICENSE`).toBe(license)
    }
  })

  // `--strict` on the command line as a newcomer would; the tsconfig files add the resolution modes.
  it.each(['nodenext', 'bundler'])('type-checks a server, a Node client and a React component under --strict (%s)', async (mode) => {
    await inApp(process.execPath, ['node_modules/typescript/bin/tsc', '-p', `tsconfig.${mode}.json`, '--strict'])
  })

  it('bundles the browser client with esbuild, with no Node.js built-in in it', async () => {
    // npm swaps esbuild's JS launcher for the native binary, so it runs as a program, not under node.
    await inApp(join(app, 'node_modules/.bin/esbuild'), [
      'browser.tsx',
      '--bundle',
      '--minify',
      '--platform=browser',
      '--format=esm',
      '--outfile=dist/browser.js',
      '--metafile=dist/meta.json',
    ])
    const meta = JSON.parse(readFileSync(join(app, 'dist/meta.json'), 'utf8')) as { inputs: Record<string, { imports: Array<{ path: string }> }> }
    const inputs = Object.keys(meta.inputs)
    expect(inputs.some((path) => path.includes('node_modules/zuno/dist/'))).toBe(true)
    expect(inputs.some((path) => path.includes('node_modules/zuno/dist/server'))).toBe(false)
    // esbuild refuses to bundle a built-in for the browser, but leaves `node:` imports it was told are external.
    const imports = Object.values(meta.inputs).flatMap((input) => input.imports.map((i) => i.path))
    expect(imports.filter((path) => path.startsWith('node:'))).toEqual([])
    expect(readFileSync(join(app, 'dist/browser.js'), 'utf8')).not.toMatch(/["']node:/)
  })

  it('syncs a store from a CJS client through an ESM server to a second client', async () => {
    const server = startScript('roundtrip-server.mjs')
    const { port } = await server.waitFor<{ port: number }>((line) => typeof line.port === 'number')
    const client = startScript('roundtrip-client.cjs', [`http://127.0.0.1:${port}/zuno`])
    const result = await client.waitFor<{ version: number; seenBySecondClient: number }>((line) => 'seenBySecondClient' in line)
    expect(result).toEqual({ version: 1, seenBySecondClient: 41 })
    await server.waitFor((line) => line.counter === 41)
    server.child.kill('SIGTERM')
  })

  it('writes from a CommonJS runtime without import() (as Jest loads modules) and without WebCrypto', async () => {
    const server = startScript('roundtrip-server.mjs')
    const { port } = await server.waitFor<{ port: number }>((line) => typeof line.port === 'number')
    const client = startScript('jest-like-client.cjs', [`http://127.0.0.1:${port}/zuno`])
    expect(await client.waitFor<{ version: number }>((line) => 'version' in line)).toEqual({ version: 1 })
    server.child.kill('SIGTERM')
  })
})
