/** A small deterministic generator of numbers in [0, 1), so runs (and the processes of a run) draw the same. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return state / 2 ** 32
  }
}
