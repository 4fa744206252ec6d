import type { ZunoError } from 'zuno'

/** What kind of trouble an error is, as the page tells it apart. */
export type ErrorKind = 'conflict' | 'delivery' | 'credentials' | 'refused'

/** Codes that mean the op has not reached the server yet: it is kept and sent again. */
const DELIVERY = new Set(['network', 'unavailable', 'rate_limited', 'too_many_streams', 'shutting_down'])
const CREDENTIALS = new Set(['unauthenticated', 'origin_not_allowed'])

/**
 * Sorts the replica's last error: a conflict is another writer winning a race; a delivery problem
 * (the network, a restarting server, a proxy's 5xx) is not a conflict and loses nothing.
 */
export function errorKind(error: ZunoError): ErrorKind {
  if (error.code === 'conflict') return 'conflict'
  if (DELIVERY.has(error.code) || error.status >= 500) return 'delivery'
  if (CREDENTIALS.has(error.code)) return 'credentials'
  return 'refused'
}

/** The heading the page shows above an error of each kind. */
export const ERROR_HEADINGS: Record<Exclude<ErrorKind, 'conflict'>, string> = {
  delivery: 'Delivery: not sent yet, will retry',
  credentials: 'Sign-in needed',
  refused: 'Refused by the server',
}
