/** A state the full-disk fixtures write: its round and a padding of varying length. */
export type PaddedState = { k: number; pad: string }

/**
 * For the full-disk fixtures: `rounds` writes of states whose size varies with a seeded generator, so a
 * `ulimit -f` makes some fail; a write failing `unavailable` goes to `onUnavailable` (which recovers), any
 * other error is thrown. Resolves with the number of writes that failed.
 */
export async function writeThroughFullDisk(options: {
  rounds: number
  /** The pad's length for round `k`, given the generator's `seed` for it. */
  padLength: (k: number, seed: number) => number
  write: (k: number, state: PaddedState) => unknown
  onUnavailable: (k: number) => void
}): Promise<number> {
  let failures = 0
  let seed = 7
  for (let k = 1; k <= options.rounds; k++) {
    seed = (seed * 1103515245 + 12345) % 2147483648
    const state = { k, pad: 'x'.repeat(options.padLength(k, seed)) }
    try {
      await options.write(k, state)
    } catch (error) {
      if ((error as { code?: string }).code !== 'unavailable') throw error
      failures += 1
      options.onUnavailable(k)
    }
  }
  return failures
}
