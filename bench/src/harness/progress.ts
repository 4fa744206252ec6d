/** Progress lines while the benchmarks run: step, elapsed time and what is running. */
export class Progress {
  #done = 0
  readonly #started = Date.now()

  constructor(readonly total: number) {}

  /** Announces the next step. */
  step(label: string): void {
    this.#done += 1
    const elapsed = Math.round((Date.now() - this.#started) / 1000)
    const clock = `${Math.floor(elapsed / 60)}:${String(elapsed % 60).padStart(2, '0')}`
    const width = String(this.total).length
    console.log(`[${String(this.#done).padStart(width)}/${this.total} ${clock}] ${label}`)
  }

  /** A line of detail under the current step. */
  detail(text: string): void {
    console.log(`        ${text}`)
  }
}
