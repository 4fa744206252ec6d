/**
 * React re-render counts with selectors: a list of rows, each selecting its own item, rendered
 * with zuno-react and with zustand, then the same updates applied to both. Counts, not timings.
 */
import { Window } from 'happy-dom'
import { report } from '../harness/channel'

const window = new Window()
Object.assign(globalThis, { window, document: window.document, navigator: window.navigator, IS_REACT_ACT_ENVIRONMENT: true })

const { act, createElement: h } = await import('react')
const { createRoot } = await import('react-dom/client')
const { createUniverse } = await import('zuno/server')
const { ZunoProvider, useStore, shallowEqual } = await import('zuno-react')
const { createStore, useStore: useZustand } = await import('zustand')
const { useShallow } = await import('zustand/shallow')

const ROWS = 100

interface Item {
  id: number
  n: number
}
interface Board {
  title: string
  items: Item[]
}

const initial: Board = { title: 'board', items: Array.from({ length: ROWS }, (_, id) => ({ id, n: 0 })) }

/** The updates applied to both, and how many row renders each should cost at best. */
const updates: Array<{ name: string; apply: (board: Board) => Board; ideal: number }> = [
  { name: 'one item of 100 changes', apply: (b) => ({ ...b, items: b.items.map((it) => (it.id === 7 ? { ...it, n: it.n + 1 } : it)) }), ideal: 1 },
  { name: 'a field no row selects changes', apply: (b) => ({ ...b, title: `${b.title}!` }), ideal: 0 },
  { name: 'every item changes', apply: (b) => ({ ...b, items: b.items.map((it) => ({ ...it, n: it.n + 1 })) }), ideal: ROWS },
]

let renders = 0

async function measure(
  mode: 'value' | 'object',
  library: 'zuno' | 'zustand',
): Promise<Record<string, number>> {
  const container = document.createElement('div')
  const root = createRoot(container as unknown as Element)
  let update: (apply: (board: Board) => Board) => Promise<void>
  let tree: ReturnType<typeof h>
  if (library === 'zuno') {
    const universe = createUniverse({ stores: { board: initial } })
    await universe.ready
    const board = universe.store<Board>('board')
    const Row = ({ index }: { index: number }) => {
      renders += 1
      const picked =
        mode === 'value'
          ? useStore<Board, number>('board', (s) => (s.items[index] as Item).n)
          : useStore<Board, { n: number; id: number }>('board', (s) => ({ n: (s.items[index] as Item).n, id: index }), shallowEqual).n
      return h('li', null, picked)
    }
    tree = h(ZunoProvider, { universe }, h('ul', null, ...Array.from({ length: ROWS }, (_, index) => h(Row, { key: index, index }))))
    update = async (apply) => {
      await board.set(apply)
    }
  } else {
    const store = createStore<Board>()(() => initial)
    const Row = ({ index }: { index: number }) => {
      renders += 1
      const picked =
        mode === 'value'
          ? useZustand(store, (s) => (s.items[index] as Item).n)
          : useZustand(store, useShallow((s: Board) => ({ n: (s.items[index] as Item).n, id: index }))).n
      return h('li', null, picked)
    }
    tree = h('ul', null, ...Array.from({ length: ROWS }, (_, index) => h(Row, { key: index, index })))
    update = async (apply) => {
      store.setState(apply(store.getState()), true)
    }
  }
  await act(async () => root.render(tree))
  const counts: Record<string, number> = {}
  for (const { name, apply } of updates) {
    renders = 0
    await act(async () => {
      await update(apply)
    })
    counts[name] = renders
  }
  await act(async () => root.unmount())
  return counts
}

const results: Record<string, unknown> = {}
for (const mode of ['value', 'object'] as const) {
  results[mode] = { zuno: await measure(mode, 'zuno'), zustand: await measure(mode, 'zustand') }
}
report({ type: 'result', rows: ROWS, ideal: Object.fromEntries(updates.map((u) => [u.name, u.ideal])), ...results })
await window.happyDOM.close()
process.exit(0)
