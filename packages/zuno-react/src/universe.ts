import { createContext, createElement, type ReactNode, useContext } from 'react'
import type { Universe } from 'zuno'

const UniverseContext = createContext<Universe | null>(null)

/** Makes `universe` available to the hooks below it. */
// biome-ignore lint/suspicious/noExplicitAny: any app's universe, a store family's (an index signature of states) included
export function ZunoProvider(props: { universe: Universe<Record<string, any>>; children?: ReactNode }): ReactNode {
  return createElement(UniverseContext.Provider, { value: props.universe as Universe }, props.children)
}

/** The universe of the nearest `ZunoProvider`. */
export function useUniverse<U extends Universe = Universe>(): U {
  const universe = useContext(UniverseContext)
  if (universe === null) throw new Error('useUniverse: wrap the tree in <ZunoProvider universe={…}>')
  return universe as U
}
