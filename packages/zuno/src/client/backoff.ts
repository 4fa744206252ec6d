/** Full-jitter exponential backoff: a delay in [ceiling / 2, ceiling), the ceiling doubling per attempt up to `capMs`. */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1))
  return ceiling / 2 + random() * (ceiling / 2)
}
