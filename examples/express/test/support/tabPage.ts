/**
 * The browser side of the tab tests: one replica, with the store filter and hydration the page's
 * query asks for (`?stores=a,b&hydrate=1`). It records every status it reports together with what
 * its stores show at that moment, so a test can see whether it ever said `connected` without data.
 */
import { connect, type StateResponse } from 'zuno'

const query = new URLSearchParams(location.search)
const stores = query.get('stores')?.split(',')
const hydrate = query.has('hydrate') ? ((await (await fetch('/zuno/state')).json()) as StateResponse) : undefined
const universe = connect({ url: '/zuno', ...(stores ? { stores } : {}), ...(hydrate ? { hydrate } : {}) })
const watched = stores ?? []
const shown = () => Object.fromEntries(watched.map((key) => [key, universe.store(key).get()]))
const statuses: { status: string; stores: Record<string, unknown> }[] = []
const record = (status: string) => statuses.push({ status, stores: shown() })
record(universe.status.get())
universe.status.subscribe(record)
Object.assign(window, { zuno: universe, statuses, shown })
