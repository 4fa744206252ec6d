import { expect } from 'vitest'
import { runFixture } from './runFixture'

/**
 * The one-process-per-folder check both storages pass with their holder fixture (`fileHolder.ts`,
 * `sqliteHolder.ts`): a second holder on `dir` is refused naming the folder, and a holder killed
 * with SIGKILL does not block a restart.
 */
export async function expectOneHolderPerFolder(fixture: string, dir: string): Promise<void> {
  const holder = runFixture(fixture, { env: { DATA_DIR: dir } })
  await holder.printed('ready')
  const second = await runFixture(fixture, { env: { DATA_DIR: dir } }).exited
  expect(second.code).toBe(3)
  expect(second.stderr).toContain(dir)
  expect(second.stderr).toContain('in use')
  holder.child.kill('SIGKILL')
  await holder.exited
  const third = runFixture(fixture, { env: { DATA_DIR: dir } })
  await third.printed('ready')
  third.child.kill('SIGKILL')
}
