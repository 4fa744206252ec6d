import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Temporary data folders, removed by {@link removeDirs}. */
const dirs: string[] = []

/** A new empty folder named `prefix…` under the system temp folder, so each test gets its own data folder. */
export function freshDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  dirs.push(dir)
  return dir
}

/** Removes every folder {@link freshDir} made, so tests leave nothing behind (call it in `afterEach`). */
export function removeDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}
