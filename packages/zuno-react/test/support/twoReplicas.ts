import { EventSource } from 'eventsource'
import { connect } from 'zuno'
import { createUniverse } from 'zuno/server'
import { serveExpress } from '../../../zuno-express/test/serveExpress'
import { cleanups } from './cleanups'

/**
 * A server on 127.0.0.1 that allows any store, and two replicas of it, `a` and `b` (no tabs, no
 * stores: what presence needs); all closed after the test.
 */
export async function twoReplicas() {
  const served = await serveExpress(createUniverse({ stores: {}, allowStore: () => true }))
  cleanups.push(served.close)
  const replica = () => {
    const made = connect({ url: served.url, EventSource, tabs: false, fetch: globalThis.fetch, stores: [] })
    cleanups.push(() => made.close())
    return made
  }
  return { served, a: replica(), b: replica() }
}
