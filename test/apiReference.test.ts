import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// The reference is the one `pnpm docs:api` builds (same typedoc.json), written as JSON so it can be read.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const typedocBin = join(dirname(createRequire(import.meta.url).resolve('typedoc/package.json')), 'bin', 'typedoc')

interface Reflection {
  name: string
  children?: Reflection[]
}

/** Every public entry of every package: `package.json` `exports` subpaths and the `.d.ts` each one ships. */
function packageEntries(): { specifier: string; dts: string }[] {
  const entries: { specifier: string; dts: string }[] = []
  for (const dir of readdirSync(join(root, 'packages'))) {
    const pkgFile = join(root, 'packages', dir, 'package.json')
    if (!existsSync(pkgFile)) continue
    const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { name: string; exports: Record<string, unknown> }
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') continue // `./package.json`
      const types = (target as { import: { types: string } }).import.types
      entries.push({ specifier: subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`, dts: join(root, 'packages', dir, types) })
    }
  }
  return entries
}

/** The names an entry exports, values and types alike, as TypeScript sees the built declarations. */
function exportedNames(dts: string): string[] {
  const program = ts.createProgram([dts], { noEmit: true, skipLibCheck: true, types: [] })
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(dts)
  const module = source === undefined ? undefined : checker.getSymbolAtLocation(source)
  if (module === undefined) throw new Error(`${dts} is not a module`)
  return checker.getExportsOfModule(module).map((symbol) => symbol.name)
}

describe('the API reference (pnpm docs:api)', () => {
  let out: string
  let run: ReturnType<typeof spawnSync>
  let output: string

  beforeAll(() => {
    out = mkdtempSync(join(tmpdir(), 'zuno-api-'))
    // Naming an output on the command line replaces the HTML one of typedoc.json: JSON only. Warnings
    // do not stop it here, so that both checks report; the first one fails on any warning.
    const args = [typedocBin, '--json', join(out, 'api.json'), '--treatWarningsAsErrors', 'false']
    run = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } })
    output = `${run.stdout}${run.stderr}`
  }, 120_000) // typedoc takes about 20 s here; the project's hook timeout is 20 s

  afterAll(() => rmSync(out, { recursive: true, force: true }))

  it('builds without a warning or an error (every export and member documented, every link resolved)', () => {
    const problems = output.split('\n').filter((line) => /\[(warning|error)\]/.test(line))
    expect(problems).toEqual([])
    expect(run.status).toBe(0)
    // `pnpm docs:api` itself fails on a warning, so a gap cannot land unnoticed between test runs.
    const config = JSON.parse(readFileSync(join(root, 'typedoc.json'), 'utf8')) as { treatWarningsAsErrors?: boolean }
    expect(config.treatWarningsAsErrors).toBe(true)
  })

  it('documents every value and type that every package entry exports', () => {
    expect(existsSync(join(out, 'api.json')), `typedoc wrote no JSON:\n${output}`).toBe(true)
    const project = JSON.parse(readFileSync(join(out, 'api.json'), 'utf8')) as Reflection
    const modules = new Map((project.children ?? []).map((module) => [module.name, new Set((module.children ?? []).map((child) => child.name))]))
    const missing: string[] = []
    const entries = packageEntries()
    for (const { specifier, dts } of entries) {
      expect(existsSync(dts), `${dts} is missing: run \`pnpm build\` first`).toBe(true)
      const documented = modules.get(specifier)
      if (documented === undefined) {
        missing.push(`${specifier} (the whole entry: add it to typedoc.json)`)
        continue
      }
      for (const name of exportedNames(dts)) if (!documented.has(name)) missing.push(`${specifier}: ${name}`)
    }
    expect(missing).toEqual([])
    // Seven entries today; fewer means the exports were not read, not that all is well.
    expect(entries.length).toBeGreaterThanOrEqual(7)
  })
})
