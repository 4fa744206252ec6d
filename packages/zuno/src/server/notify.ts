/**
 * Calls every listener with `value`; one that throws is reported and the others still run, so a
 * faulty listener never drops an event for the rest of the server.
 */
export function notifyEach<T>(listeners: Iterable<(value: T) => void>, value: T, what: string): void {
  for (const listener of listeners) {
    try {
      listener(value)
    } catch (error) {
      console.error(`[zuno] ${what} threw; the others still run`, error)
    }
  }
}
