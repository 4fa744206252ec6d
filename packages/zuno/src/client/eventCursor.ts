/** Where this replica stands in the server's history: the epoch it follows and the last event id applied. */
import { parseEventId } from '../protocol'

export class EventCursor {
  #epoch: string | undefined
  #lastEventId: string | undefined

  /** The epoch of the last event applied, if any. */
  get epoch(): string | undefined {
    return this.#epoch
  }

  /** The id of the last event applied: where a reconnect resumes. */
  get lastEventId(): string | undefined {
    return this.#lastEventId
  }

  /** Whether the event belongs to the history followed (any, before the first). */
  sameEpoch(eventId: string): boolean {
    return this.#epoch === undefined || parseEventId(eventId)?.epoch === this.#epoch
  }

  /** Records the id of an applied event; true when it belongs to a new epoch (a restarted server). */
  note(id: string): boolean {
    if (!id) return false
    this.#lastEventId = id
    const epoch = parseEventId(id)?.epoch
    const changed = this.#epoch !== undefined && epoch !== this.#epoch
    this.#epoch = epoch
    return changed
  }
}
