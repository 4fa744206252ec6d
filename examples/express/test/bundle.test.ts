/**
 * The demo's browser bundle is built from the packages' sources, never from their `dist/`: the
 * README's `pnpm install && pnpm demo` runs on a fresh clone, where no package is built yet.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from 'esbuild'
import { afterAll, expect, it } from 'vitest'
// @ts-expect-error: a plain ES module of the example, without types
import { bundleOptions } from '../bundleOptions.mjs'

const outDir = mkdtempSync(join(tmpdir(), 'zuno-bundle-'))
afterAll(() => rmSync(outDir, { recursive: true, force: true }))

it('bundles zuno and zuno-react from their TypeScript sources, not from a build', async () => {
  const result = await build({ ...bundleOptions, outfile: join(outDir, 'app.js'), metafile: true, logLevel: 'silent' })
  const inputs = Object.keys(result.metafile?.inputs ?? {})
  const fromPackages = inputs.filter((input) => input.includes('packages/'))
  expect(fromPackages.some((input) => input.includes('packages/zuno/src/'))).toBe(true)
  expect(fromPackages.some((input) => input.includes('packages/zuno-react/src/'))).toBe(true)
  expect(fromPackages.filter((input) => input.includes('/dist/'))).toEqual([])
}, 60_000)
