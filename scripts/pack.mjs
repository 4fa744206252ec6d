// Packs every package under packages/ the way a release would: with pnpm, which rewrites the
// `workspace:^` ranges to real versions (npm pack would leave them in, and installs would fail).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
/** The pnpm this repository is tested with (see docs: newer lockfiles may be refused). */
export const pnpm = ['npx', '-y', 'pnpm@12.4.2']

/** The publishable packages: every folder under packages/ with a package.json that is not private. */
export function packageDirs() {
  const base = join(root, 'packages')
  return readdirSync(base)
    .map((name) => join(base, name))
    .filter((dir) => existsSync(join(dir, 'package.json')))
    .filter((dir) => !JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).private)
}

/** Runs `pnpm pack` for each package into `dest`; returns name, version, tarball path and size in bytes. */
export function packAll(dest) {
  mkdirSync(dest, { recursive: true })
  return packageDirs().map((dir) => {
    const [command, ...args] = pnpm
    const out = execFileSync(command, [...args, 'pack', '--pack-destination', dest, '--json'], { cwd: dir, encoding: 'utf8' })
    const { name, version, filename } = JSON.parse(out)
    return { name, version, dir, tarball: filename, bytes: statSync(filename).size }
  })
}

export const kB = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`
