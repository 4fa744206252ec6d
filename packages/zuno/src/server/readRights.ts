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
   * longer are (refused from now on), and those that were not and now are. These stay refused
   * until {@link grant}: the stream must be sent their state before their changes.
   */
  recheck(): { revoked: string[]; granted: string[] } {
    const revoked: string[] = []
    const granted: string[] = []
    for (const [storeKey, may] of this.#decided) {
      const now = this.rule(storeKey)
      if (now === may) continue
      if (may) {
        revoked.push(storeKey)
        this.#decided.set(storeKey, false)
      } else granted.push(storeKey)
    }
    return { revoked, granted }
  }

  /** Lets through the stores of `storeKeys` the rule still allows (their state is being sent now); returns them. */
  grant(storeKeys: readonly string[]): string[] {
    const allowed = storeKeys.filter((storeKey) => this.#decided.get(storeKey) === false && this.rule(storeKey))
    for (const storeKey of allowed) this.#decided.set(storeKey, true)
    return allowed
  }
}
