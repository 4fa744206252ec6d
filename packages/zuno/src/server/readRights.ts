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

  /**
   * Asks the rule again for every store it answered: returns those that were readable and no
   * longer are, and those that were not and now are (the stream must be sent their state first).
   */
  recheck(): { revoked: string[]; granted: string[] } {
    const revoked: string[] = []
    const granted: string[] = []
    for (const [storeKey, may] of this.#decided) {
      const now = this.rule(storeKey)
      if (now === may) continue
      ;(may ? revoked : granted).push(storeKey)
      this.#decided.set(storeKey, now)
    }
    return { revoked, granted }
  }
}
