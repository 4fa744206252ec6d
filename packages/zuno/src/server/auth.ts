/** Who is asking, as the app's `authenticate` says. `id` must be stable and unique per user. */
export interface Principal {
  /** Stable per user: rate limits, stream limits and client ids are kept by it. */
  id: string
}

/** What `authenticate` sees of a request. EventSource cannot send headers: read a cookie or a query token. */
export interface AuthRequest {
  /** A request header by lower-case name, such as `authorization`. */
  header(name: string): string | null | undefined
  /** The query string: where an EventSource carries a token (`?token=…`). */
  query: URLSearchParams
  /** A cookie by name. */
  cookie(name: string): string | undefined
}

/** Identifies the principal of a request; `undefined` means not signed in (answered 401). May be async. */
export type Authenticate<P extends Principal = Principal> = (request: AuthRequest) => P | undefined | Promise<P | undefined>

/**
 * May `principal` read or write `storeKey`? Synchronous on purpose: it runs for every proposal and,
 * on the fan-out path, once per stream and store. Do lookups in `authenticate` and carry the result
 * on the principal.
 */
export type Authorize<P extends Principal = Principal> = (check: {
  principal: P | undefined
  storeKey: string
  action: 'read' | 'write'
}) => boolean

/**
 * May `principal` run the action `action` with `args`? Checked before the action runs (its `args`
 * as the client sent them); the stores it then reads and writes are checked with {@link Authorize}.
 * Synchronous, like `Authorize`.
 */
export type AuthorizeAction<P extends Principal = Principal> = (check: {
  /** Who asks; `undefined` without `authenticate`. */
  principal: P | undefined
  /** The action's name. */
  action: string
  /** Its arguments, as sent. */
  args: unknown
}) => boolean

/** Reads one cookie from a `Cookie` header. */
export function readCookie(header: string | null | undefined, name: string): string | undefined {
  if (!header) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim()
      try {
        return decodeURIComponent(value)
      } catch {
        return value
      }
    }
  }
  return undefined
}
