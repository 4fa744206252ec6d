/**
 * Which stores a stream of every store may read: the rule's answers, kept per store so that the
 * fan-out asks it once per stream and store, and asked again when the principal's access changes.
 */
export class ReadRights {
  readonly #decided = new Map<string, boolean>()

  constructor(readonly rule: (storeKey: string) => boolean) {}

  /** Whether the stream may read `storeKey`. */
  readonly may = (storeKey: string): boolean => {
    let may = this.#decided.get(storeKey)
    if (may === undefined) this.#decided.set(storeKey, (may = this.rule(storeKey)))
    return may
  }

  /** Forgets every answer, and returns the stores that were readable and no longer are. */
  recheck(): string[] {
    const revoked: string[] = []
    for (const [storeKey, may] of this.#decided) if (may && !this.rule(storeKey)) revoked.push(storeKey)
    this.#decided.clear()
    return revoked
  }
}
