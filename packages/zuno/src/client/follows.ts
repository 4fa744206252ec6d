/**
 * The stores a replica's stream follows besides its fixed `stores`: counted per `follow()` call,
 * kept for a grace period after the last one is released, and told to the server on the open
 * stream (`POST /subscribe`). Whatever cannot be told (the stream is gone, or a request failed)
 * is carried by the next connection's URL, with the versions the replica holds: a reconnect
 * repairs every follow, so nothing here is retried by itself.
 */
import { ZunoError } from '../errors'
import { type ErrorBody, MAX_STORES_PER_STREAM, PATHS, PROTOCOL_HEADER, PROTOCOL_VERSION, type SubscribeRequest } from '../protocol'
import type { Timers } from './connection'
import type { ReplicaStores } from './replicaStores'

/** What {@link Follows} needs of its replica. */
export interface FollowsDeps {
  /** The mount's URL, without a trailing slash. */
  readonly url: string
  readonly fetch: typeof fetch
  readonly token: (() => string | undefined) | undefined
  readonly withCredentials: boolean
  readonly timers: Timers
  readonly replicas: ReplicaStores
  /** How long a store stays followed after its last `follow()` is released, ms. */
  readonly graceMs: number
  /** The stream could not be told: reconnect it now, resuming, so the URL carries every follow. */
  reconnect(): void
  /** The server refused (or revoked) reading these stores. */
  refused(storeKeys: readonly string[], error: ZunoError): void
}

/** What the query of a (re)connecting stream says of its stores. */
export interface StreamStores {
  /** The fixed stores (`?stores=`). */
  stores: readonly string[]
  /** The stores followed since (`?follow=`). */
  follow: readonly string[]
  /** Per store of both lists, in order, the version held or `-` (`?versions=`). */
  versions: string
}

/**
 * How many characters the stores a reconnecting stream names may take in its URL: servers refuse
 * long request lines (Node.js at 16 KiB of headers, 431), so the follows past it go on the stream
 * once it is open, in `POST /subscribe`, and arrive whole.
 */
const URL_STORES_CHARS = 6000

export class Follows {
  readonly #fixed: ReadonlySet<string> | undefined
  readonly #deps: FollowsDeps
  /** Per store: how many `follow()` calls hold it (0 while its grace period runs). */
  readonly #holders = new Map<string, number>()
  readonly #graceTimers = new Map<string, unknown>()
  /** Stores other tabs follow through this one (the leader), by tab. */
  readonly #tabs = new Map<string, ReadonlySet<string>>()
  /** Stores the server refused: not asked for again until {@link retry}. */
  readonly #refused = new Set<string>()
  /** Stores past what one stream may follow, already reported: they are followed once others let go. */
  readonly #overflow = new Set<string>()
  /** What the open stream follows, as far as it has been told (its URL, and the requests sent). */
  readonly #onStream = new Set<string>()
  #streamId: string | undefined
  #sending = false
  #scheduled = false
  #closed = false
  /** Called when this replica's wanted stores change: a follower tab tells its leader. */
  onChange: (() => void) | undefined

  constructor(fixed: readonly string[] | undefined, deps: FollowsDeps) {
    this.#fixed = fixed && new Set(fixed)
    this.#deps = deps
  }

  /** Whether the stream carries every store the principal may read: then following is nothing to do. */
  get everything(): boolean {
    return this.#fixed === undefined
  }

  /** Follows `storeKey` until the returned function is called (then for the grace period more). */
  follow(storeKey: string): () => void {
    if (this.#fixed === undefined || this.#closed) return () => {}
    const timer = this.#graceTimers.get(storeKey)
    if (timer !== undefined) {
      this.#deps.timers.clearTimeout(timer)
      this.#graceTimers.delete(storeKey)
    }
    const before = this.#holders.get(storeKey)
    this.#holders.set(storeKey, (before ?? 0) + 1)
    if (before === undefined) this.#changed()
    let released = false
    return () => {
      if (released) return
      released = true
      const holders = (this.#holders.get(storeKey) ?? 1) - 1
      this.#holders.set(storeKey, holders)
      if (holders > 0 || this.#closed) return
      this.#graceTimers.set(
        storeKey,
        this.#deps.timers.setTimeout(() => {
          this.#graceTimers.delete(storeKey)
          if (this.#holders.get(storeKey) !== 0) return
          this.#holders.delete(storeKey)
          this.#changed()
        }, this.#deps.graceMs),
      )
    }
  }

  /** Whether the stream carries `storeKey`: every store, one of its own, or one followed (here, or through the leader tab). */
  carries(storeKey: string): boolean {
    if (this.#fixed === undefined || this.#fixed.has(storeKey) || this.#onStream.has(storeKey)) return true
    // Past what one stream may follow: not on it, so nothing may wait for it there.
    return this.#holders.has(storeKey) && !this.#overflow.has(storeKey)
  }

  /** The stores this replica itself follows at runtime: what a follower tab tells its leader. */
  own(): string[] {
    return [...this.#holders.keys()]
  }

  /** Leader: what another tab follows through this one's stream (`undefined`: the tab left). */
  setTab(tabId: string, storeKeys: readonly string[] | undefined): void {
    if (storeKeys === undefined) this.#tabs.delete(tabId)
    else this.#tabs.set(tabId, new Set(storeKeys))
    this.#schedule()
  }

  /** A stream is opening: the stores its URL names, with the versions held. `undefined`: every store. */
  streamStores(): StreamStores | undefined {
    if (this.#fixed === undefined) return undefined
    this.#streamId = undefined
    this.#onStream.clear()
    // A store of its own the server revoked would refuse the whole stream (403) if named again.
    const stores = [...this.#fixed].filter((storeKey) => !this.#refused.has(storeKey))
    const follow: string[] = []
    const versions: string[] = []
    let chars = 0
    for (const storeKey of stores) versions.push(this.#heldVersion(storeKey))
    for (const storeKey of this.#wanted()) {
      if (this.#fixed.has(storeKey)) continue
      const version = this.#heldVersion(storeKey)
      // As encoded in the URL: `:` and the `,` between entries take three characters each.
      chars += encodeURIComponent(storeKey).length + version.length + 6
      // Past the URL's room: followed once the stream is open (see URL_STORES_CHARS).
      if (chars > URL_STORES_CHARS) break
      follow.push(storeKey)
      versions.push(version)
    }
    for (const storeKey of [...stores, ...follow]) this.#onStream.add(storeKey)
    return { stores, follow, versions: versions.join(',') }
  }

  /** The stream said its id: what changed since its URL was made is told now. */
  hello(streamId: string): void {
    this.#streamId = streamId
    this.#schedule()
  }

  /** The server stopped carrying these stores: the principal may no longer read them. */
  revoked(storeKeys: readonly string[]): void {
    for (const storeKey of storeKeys) {
      this.#onStream.delete(storeKey)
      this.#refused.add(storeKey)
    }
    this.#deps.refused(storeKeys, new ZunoError('forbidden', `You may no longer read ${storeKeys.map((key) => JSON.stringify(key)).join(', ')}`))
  }

  /** Follower tab: the leader's stream cannot follow these stores yet; those this tab follows are not carried, and it is told. */
  overflowed(storeKeys: readonly string[], error: ZunoError): void {
    const mine = storeKeys.filter((storeKey) => this.#holders.has(storeKey))
    if (mine.length === 0) return
    for (const storeKey of mine) this.#overflow.add(storeKey)
    this.#deps.refused(mine, error)
  }

  /** New credentials, or the app asked: stores refused before are asked for again. */
  retry(): void {
    if (this.#refused.size === 0) return
    this.#refused.clear()
    this.#schedule()
  }

  close(): void {
    this.#closed = true
    for (const timer of this.#graceTimers.values()) this.#deps.timers.clearTimeout(timer)
    this.#graceTimers.clear()
  }

  /** `?versions=`' entry for a store: the version held, or `-` when its state never arrived. */
  #heldVersion(storeKey: string): string {
    const replica = this.#deps.replicas.find(storeKey)
    return replica?.known ? String(replica.confirmed.version) : '-'
  }

  /**
   * The stores to follow besides the fixed ones: this replica's, then other tabs', first come first
   * served up to what one stream may follow; those past it are reported once, and come in as others go.
   */
  #wanted(): Set<string> {
    const wanted = new Set<string>()
    const room = MAX_STORES_PER_STREAM - (this.#fixed?.size ?? 0)
    const over: string[] = []
    const asked = new Set<string>()
    const add = (storeKey: string) => {
      asked.add(storeKey)
      if (this.#refused.has(storeKey) || this.#fixed?.has(storeKey) || wanted.has(storeKey)) return
      if (wanted.size < room) {
        wanted.add(storeKey)
        this.#overflow.delete(storeKey)
      } else if (!this.#overflow.has(storeKey)) over.push(storeKey)
    }
    for (const storeKey of this.#holders.keys()) add(storeKey)
    for (const keys of this.#tabs.values()) for (const storeKey of keys) add(storeKey)
    // Let go of while waiting: forgotten, so a later follow past the cap is reported again.
    for (const storeKey of this.#overflow) if (!asked.has(storeKey)) this.#overflow.delete(storeKey)
    if (over.length > 0) {
      for (const storeKey of over) this.#overflow.add(storeKey)
      this.#deps.refused(over, new ZunoError('too_many_stores', `A stream follows at most ${MAX_STORES_PER_STREAM} stores: ${over.length} more wait until others are let go`))
    }
    return wanted
  }

  #changed(): void {
    this.onChange?.()
    this.#schedule()
  }

  /** Tells the stream what changed, once per turn: the follows of one render go in one request. */
  #schedule(): void {
    if (this.#scheduled || this.#closed) return
    this.#scheduled = true
    queueMicrotask(() => {
      this.#scheduled = false
      void this.#send()
    })
  }

  async #send(): Promise<void> {
    const streamId = this.#streamId
    if (this.#sending || streamId === undefined || this.#closed || this.#fixed === undefined) return
    const wanted = this.#wanted()
    const follow = [...wanted].filter((storeKey) => !this.#onStream.has(storeKey))
    const unfollow = [...this.#onStream].filter((storeKey) => !wanted.has(storeKey) && !this.#fixed?.has(storeKey))
    if (follow.length === 0 && unfollow.length === 0) return
    for (const storeKey of follow) this.#onStream.add(storeKey)
    for (const storeKey of unfollow) this.#onStream.delete(storeKey)
    this.#sending = true
    try {
      const error = await this.#post({ streamId, follow, unfollow })
      if (error === undefined || streamId !== this.#streamId) return
      if (error.code === 'forbidden') {
        // Refused whole: the stores it unfollowed are still on the stream, to unfollow again.
        for (const storeKey of follow) this.#onStream.delete(storeKey)
        for (const storeKey of unfollow) this.#onStream.add(storeKey)
        // One of them is refused, maybe not all: each is asked for alone to know which.
        if (follow.length === 1) this.revoked(follow)
        else for (const storeKey of follow) void this.#sendOne(streamId, storeKey)
        return
      }
      // The stream is gone, or the request did not get through: a new connection names it all.
      this.#deps.reconnect()
    } finally {
      this.#sending = false
      // What changed while this request was out goes now, to whichever stream is open (a newer one too:
      // its hello found this request out, and sent nothing).
      if (this.#streamId !== undefined) this.#schedule()
    }
  }

  async #sendOne(streamId: string, storeKey: string): Promise<void> {
    this.#onStream.add(storeKey)
    const error = await this.#post({ streamId, follow: [storeKey], unfollow: [] })
    if (error === undefined || streamId !== this.#streamId) return
    this.#onStream.delete(storeKey)
    if (error.code === 'forbidden') this.revoked([storeKey])
    else this.#deps.reconnect()
  }

  /** Sends one control request; the error that refused it, if any. */
  async #post(body: Required<SubscribeRequest>): Promise<ZunoError | undefined> {
    const { url, fetch: fetchImpl, token, withCredentials } = this.#deps
    const headers: Record<string, string> = { 'content-type': 'application/json', [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) }
    const credential = token?.()
    if (credential !== undefined) headers.authorization = `Bearer ${credential}`
    try {
      const response = await fetchImpl(`${url}${PATHS.subscribe}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        credentials: withCredentials ? 'include' : 'same-origin',
      })
      if (response.ok) return undefined
      const answer = (await response.json().catch(() => undefined)) as ErrorBody | undefined
      return new ZunoError(answer?.error ?? `http_${response.status}`, answer?.message ?? `The server answered ${response.status}`)
    } catch (cause) {
      return new ZunoError('network', 'Could not reach the server to follow stores', { cause })
    }
  }
}
