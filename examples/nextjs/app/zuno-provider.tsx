'use client'

import { type ReactNode, useState } from 'react'
import { connect, createSnapshotUniverse, type StateResponse, type Universe } from 'zuno'
import { ZunoProvider } from 'zuno-react'
import { app } from '../lib/zuno'

let replica: Universe | undefined

// On the server: a read-only universe of this request's snapshot. In the browser: one replica for
// the page's life, starting from the same snapshot, so hydration renders what the server rendered.
function universeFor(state: StateResponse): Universe {
  if (typeof window === 'undefined') return createSnapshotUniverse(state)
  replica ??= connect({ app, url: '/zuno', hydrate: state })
  return replica
}

export function ZunoRoot({ state, children }: { state: StateResponse; children: ReactNode }) {
  const [universe] = useState(() => universeFor(state))
  return <ZunoProvider universe={universe}>{children}</ZunoProvider>
}
