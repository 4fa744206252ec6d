import { EventSource } from 'eventsource'
import { act, StrictMode, version as reactVersion, useState } from 'react'
import { hydrateRoot } from 'react-dom/client'
import { renderToString } from 'react-dom/server'
import { describe, expect, it, vi } from 'vitest'
import { connect, createSnapshotUniverse, defineZuno, type StateResponse, type Universe } from 'zuno'
import { createUniverse } from 'zuno/server'
import {
  serializeState,
  shallowEqual,
  useConnectionStatus,
  usePendingCount,
  useStore,
  useStoreApi,
  useStoreVersion,
  ZunoProvider,
} from 'zuno-react'
import { until } from '../../zuno/test/support/until'
import { serveExpress } from '../../zuno-express/test/serveExpress'
import { cleanups } from './support/cleanups'
import { mount } from './support/mount'

/** What the server sends: the page rendered from a snapshot universe of `state`. */
function renderOnServer(state: StateResponse, app: React.ReactNode, initial?: Record<string, unknown>): string {
  return renderToString(<ZunoProvider universe={createSnapshotUniverse(state, initial === undefined ? {} : { initial })}>{app}</ZunoProvider>)
}

/**
 * The page's HTML in a container and a browser-like hydration of it: outside act() (React's own
 * scheduler renders, as it would for real), with every console error and recoverable error kept.
 * `run` gets a `hydrate` to call when the test is ready for it; the errors are returned.
 */
async function inBrowserPage(html: string, run: (page: { container: HTMLElement; hydrate: (universe: Universe, app: React.ReactNode) => void }) => Promise<void>): Promise<unknown[]> {
  const container = document.createElement('div')
  container.innerHTML = html
  document.body.append(container)
  const errors: unknown[] = []
  const originalError = console.error
  console.error = (...args: unknown[]) => errors.push(args.join(' '))
  const actEnvironment = globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }
  actEnvironment.IS_REACT_ACT_ENVIRONMENT = false
  const hydrate = (universe: Universe, app: React.ReactNode) => {
    const root = hydrateRoot(container, <ZunoProvider universe={universe}>{app}</ZunoProvider>, { onRecoverableError: (error) => errors.push(error) })
    cleanups.push(() => root.unmount())
  }
  try {
    await run({ container, hydrate })
  } finally {
    console.error = originalError
    actEnvironment.IS_REACT_ACT_ENVIRONMENT = true
  }
  return errors
}


describe(`zuno-react on React ${reactVersion}`, () => {
  it('renders the store and re-renders once per change, not for other stores', async () => {
    const universe = createUniverse({ stores: { counter: 0, other: 0 } })
    await universe.ready
    let renders = 0
    function Counter() {
      renders += 1
      return <span>{useStore<number>('counter')}</span>
    }
    const { container } = mount(universe, <Counter />)
    expect(container.textContent).toBe('0')
    expect(renders).toBe(1)
    await act(() => universe.store<number>('counter').set(1))
    expect(container.textContent).toBe('1')
    expect(renders).toBe(2)
    await act(() => universe.store<number>('other').set(1))
    expect(renders).toBe(2)
  })

  it('does not loop or re-render for a selector that builds a new object, given shallowEqual', async () => {
    const universe = createUniverse({ stores: { user: { name: 'ada', visits: 0 } } })
    await universe.ready
    let renders = 0
    function Name() {
      renders += 1
      const { name } = useStore<{ name: string; visits: number }, { name: string }>(
        'user',
        (user) => ({ name: user.name }), // a new object on every call, and a new selector on every render
        shallowEqual,
      )
      return <b>{name}</b>
    }
    const { container } = mount(universe, <Name />)
    expect(renders).toBe(1)
    await act(() => universe.store<{ name: string; visits: number }>('user').set((u) => ({ ...u, visits: 1 })))
    expect(renders).toBe(1)
    await act(() => universe.store<{ name: string; visits: number }>('user').set((u) => ({ ...u, name: 'grace' })))
    expect(container.textContent).toBe('grace')
    expect(renders).toBe(2)
  })

  it('re-renders for a primitive selection only when it changes', async () => {
    const universe = createUniverse({ stores: { todos: [] as string[] } })
    await universe.ready
    let renders = 0
    function Count() {
      renders += 1
      return <i>{useStore<string[], number>('todos', (todos) => todos.length)}</i>
    }
    const { container } = mount(universe, <Count />)
    await act(() => universe.store<string[]>('todos').set(['a']))
    await act(() => universe.store<string[]>('todos').set(['b']))
    expect(container.textContent).toBe('1')
    expect(renders).toBe(2)
  })

  it('shows status and pending ops of a replica, and sets through useStoreApi', async () => {
    const served = await serveExpress(createUniverse({ stores: { counter: 0 } }))
    cleanups.push(served.close)
    const replica = connect({ url: served.url, EventSource, tabs: false, fetch: globalThis.fetch })
    cleanups.push(() => replica.close())
    let increment: () => Promise<number> = async () => 0
    function Panel() {
      const counter = useStoreApi<number>('counter', 0)
      increment = () => counter.set((n) => n + 1)
      return (
        <p>
          {useConnectionStatus()}/{usePendingCount()}/{useStore<number>('counter')}/v{useStoreVersion('counter')}
        </p>
      )
    }
    const { container } = mount(replica, <Panel />)
    // Wait on the universe, then let React render: inside act, React 18 defers renders to its end.
    await until(() => replica.status.get() === 'connected')
    await act(async () => {})
    expect(container.textContent).toBe('connected/0/0/v0')
    let done: Promise<number> = Promise.resolve(0)
    act(() => {
      done = increment()
    })
    expect(container.textContent).toBe('connected/1/1/v0') // at once, before the server answers
    await act(() => done)
    expect(container.textContent).toBe('connected/0/1/v1')
    expect(served.universe.store('counter').get()).toBe(1)
  })

  it('renders on the server and hydrates on the client with no mismatch and no missed event', async () => {
    const served = await serveExpress(createUniverse({ stores: { counter: 0, todos: ['ssr'] } }))
    cleanups.push(served.close)
    await served.universe.store<number>('counter').set(5)
    function App() {
      const counter = useStore<number>('counter')
      const todos = useStore<string[]>('todos')
      return (
        <main>
          <span id="counter">{counter}</span>
          <span id="todos">{todos.join(',')}</span>
          <span id="status">{useConnectionStatus()}</span>
        </main>
      )
    }
    // The server: a universe per request, frozen at one snapshot, and its state embedded in the page.
    const state = served.universe.snapshot()
    const html = renderOnServer(state, <App />)
    const embedded = serializeState(state)
    expect(html).toContain('<span id="counter">5</span>')

    // A change lands between the render and the hydration: the client must not miss it.
    await served.universe.store<number>('counter').set(6)

    const replica = connect({ url: served.url, EventSource, tabs: false, hydrate: JSON.parse(embedded) })
    cleanups.push(() => replica.close())
    const errors = await inBrowserPage(html, async ({ container, hydrate }) => {
      hydrate(replica, <App />)
      expect(container.querySelector('#counter')?.textContent).toBe('5') // no flash: the server's state first
      await until(() => container.querySelector('#counter')?.textContent === '6')
      expect(container.querySelector('#todos')?.textContent).toBe('ssr')
      await until(() => container.querySelector('#status')?.textContent === 'connected')
    })
    expect(errors.map(String)).toEqual([])
  })

  it('hydrates with no mismatch when newer state and status arrived before hydration, then shows them', async () => {
    const served = await serveExpress(createUniverse({ stores: { counter: 0 } }))
    cleanups.push(served.close)
    function App() {
      return (
        <main>
          <span id="counter">{useStore<number>('counter')}</span>
          <span id="version">{useStoreVersion('counter')}</span>
          <span id="status">{useConnectionStatus()}</span>
          <span id="pending">{usePendingCount()}</span>
        </main>
      )
    }
    const state = served.universe.snapshot()
    const html = renderOnServer(state, <App />)
    expect(html).toContain('<span id="status">connecting</span>')
    const replica = connect({ url: served.url, EventSource, tabs: false, hydrate: JSON.parse(serializeState(state)) })
    cleanups.push(() => replica.close())
    const errors = await inBrowserPage(html, async ({ container, hydrate }) => {
      // As in a tab that hears from the leader before the page's script hydrates: connected, and newer.
      await until(() => replica.status.get() === 'connected')
      await served.universe.store<number>('counter').set(7)
      await until(() => replica.store('counter').get() === 7)
      hydrate(replica, <App />)
      await until(() => container.textContent === '71connected0')
    })
    expect(errors.map(String)).toEqual([])
  })

  it('renders a store the snapshot lacks from the initial state both sides declare, with no mismatch', async () => {
    const served = await serveExpress(createUniverse({ stores: {}, allowStore: () => true }))
    cleanups.push(served.close)
    const initial = { likes: 0 }
    function App() {
      return <span id="likes">likes: {String(useStore<number>('likes'))}</span>
    }
    const state = served.universe.snapshot()
    const html = renderOnServer(state, <App />, initial)
    expect(html).toContain('likes: <!-- -->0')
    const replica = connect({ url: served.url, EventSource, tabs: false, hydrate: JSON.parse(serializeState(state)), initial })
    cleanups.push(() => replica.close())
    const errors = await inBrowserPage(html, async ({ container, hydrate }) => {
      hydrate(replica, <App />)
      await until(() => replica.status.get() === 'connected')
      expect(container.textContent).toBe('likes: 0')
    })
    expect(errors.map(String)).toEqual([])
  })

  it('renders a family store the snapshot lacks, and a deleted one, from the app’s initial states, with no mismatch', async () => {
    const app = defineZuno({ stores: { 'doc:{id}': { initial: { title: 'untitled' } } } })
    const universe = createUniverse({ app })
    const served = await serveExpress(universe)
    cleanups.push(served.close)
    await universe.store('doc:2').set({ title: 'Two' })
    await universe.delete('doc:2')
    function App() {
      return (
        <p>
          {useStore<{ title: string }>('doc:1').title}/{useStore<{ title: string }>('doc:2').title}
        </p>
      )
    }
    const state = universe.snapshot(['doc:1', 'doc:2'])
    const html = renderToString(
      <ZunoProvider universe={createSnapshotUniverse(state, { app })}>
        <App />
      </ZunoProvider>,
    )
    expect(html).toContain('untitled<!-- -->/<!-- -->untitled')
    const replica = connect({ url: served.url, EventSource, tabs: false, app, stores: ['doc:1', 'doc:2'], hydrate: JSON.parse(serializeState(state)) })
    cleanups.push(() => replica.close())
    const errors = await inBrowserPage(html, async ({ container, hydrate }) => {
      // (An app's replica is typed by its stores; the page helper takes any universe.)
      hydrate(replica as unknown as Universe, <App />)
      await until(() => replica.status.get() === 'connected')
      expect(container.textContent).toBe('untitled/untitled')
    })
    expect(errors.map(String)).toEqual([])
  })

  it('takes the same initial object literal with its keys in another order as the same declaration', () => {
    const page = createSnapshotUniverse({ stores: {}, cursor: '' })
    page.store('doc', { title: '', body: '' })
    expect(() => page.store('doc', { body: '', title: '' })).not.toThrow()
    expect(() => page.store('doc', { body: 'x', title: '' })).toThrow(expect.objectContaining({ code: 'initial_mismatch' }))
  })

  it('shows the same initial value whichever hook asks for the store first', async () => {
    // `likes` is a store the server does not have yet: until someone writes it, replicas show its initial state.
    const served = await serveExpress(createUniverse({ stores: {}, allowStore: () => true }))
    cleanups.push(served.close)
    const replica = connect({ url: served.url, EventSource, tabs: false, fetch: globalThis.fetch })
    cleanups.push(() => replica.close())
    let like: () => Promise<number> = async () => 0
    function ReadsFirst() {
      const likes = useStore<number>('likes')
      const api = useStoreApi<number>('likes', 0)
      like = () => api.set((n) => n + 1)
      return <b>{String(likes)}</b>
    }
    function DeclaresFirst() {
      useStoreApi<number>('likes', 0)
      return <i>{String(useStore<number>('likes'))}</i>
    }
    const { container } = mount(replica, <><ReadsFirst /><DeclaresFirst /></>)
    await until(() => replica.status.get() === 'connected')
    await act(async () => {})
    expect(container.textContent).toBe('00')
    await act(() => like())
    expect(container.textContent).toBe('11')
    expect(served.universe.store('likes').get()).toBe(1)
  })

  it('takes the initial states declared in connect for the very first render, and refuses another one', async () => {
    const served = await serveExpress(createUniverse({ stores: {}, allowStore: () => true }))
    cleanups.push(served.close)
    const replica = connect({ url: served.url, EventSource, tabs: false, fetch: globalThis.fetch, initial: { likes: 0 } })
    cleanups.push(() => replica.close())
    const rendered: string[] = []
    function Likes() {
      const likes = String(useStore<number>('likes'))
      rendered.push(likes)
      return <b>{likes}</b>
    }
    const { container } = mount(replica, <Likes />)
    expect(container.textContent).toBe('0')
    expect(rendered).toEqual(['0'])
    expect(() => replica.store('likes', 5)).toThrow(expect.objectContaining({ code: 'initial_mismatch' }))
    expect(() => replica.store('likes', 0)).not.toThrow()
  })
  it('tells components already showing a store of an initial state declared later, without updating them mid-render', async () => {
    const errors = vi.spyOn(console, 'error')
    cleanups.push(() => errors.mockRestore())
    const served = await serveExpress(createUniverse({ stores: {}, allowStore: () => true }))
    cleanups.push(served.close)
    const replica = connect({ url: served.url, EventSource, tabs: false, fetch: globalThis.fetch })
    cleanups.push(() => replica.close())
    let showDeclarer: () => void = () => {}
    function Reader() {
      return <b>{String(useStore<number>('likes'))}</b>
    }
    function Declarer() {
      return <i>{String(useStoreApi<number>('likes', 0).get())}</i>
    }
    function Page() {
      const [declared, setDeclared] = useState(false)
      showDeclarer = () => setDeclared(true)
      return (
        <>
          <Reader />
          {declared ? <Declarer /> : null}
        </>
      )
    }
    const { container } = mount(replica, <Page />)
    await until(() => replica.status.get() === 'connected')
    await act(async () => {})
    expect(container.textContent).toBe('undefined') // nobody declared one yet
    await act(async () => showDeclarer())
    expect(container.textContent).toBe('00')
    expect(errors.mock.calls.map((call) => String(call[0]))).not.toContainEqual(expect.stringContaining('while rendering a different component'))
  })
})

describe('following stores while they are shown', () => {
  it('follows a document while a component shows it, and stops after the grace period once none does', async () => {
    const served = await serveExpress(createUniverse({ stores: {}, allowStore: () => true }))
    cleanups.push(served.close)
    await served.universe.store('doc:1', 'first').set('one')
    await served.universe.store('doc:2', 'first').set('two')
    const requests: string[] = []
    // Each control request, once answered.
    const recordingFetch: typeof fetch = async (input, init) => {
      const response = await globalThis.fetch(input, init)
      if (init?.method === 'POST') requests.push(`${String(input).split('/zuno')[1]} ${String(init.body)}`)
      return response
    }
    const replica = connect({ url: served.url, EventSource, tabs: false, stores: [], followGraceMs: 100, fetch: recordingFetch })
    cleanups.push(() => replica.close())
    let open: (doc: string | undefined) => void = () => {}
    function Doc(props: { id: string }) {
      return <b>{String(useStore<string>(props.id))}</b>
    }
    function Page() {
      const [doc, setDoc] = useState<string | undefined>('doc:1')
      open = setDoc
      return doc === undefined ? null : <Doc id={doc} />
    }
    const { container } = mount(replica, <Page />)
    await until(() => container.textContent === 'one')
    // The stream opened before the page mounted: the document is followed on it.
    expect(requests).toEqual(['/subscribe {"streamId":' + requests[0]?.slice(requests[0].indexOf(':') + 1, requests[0].indexOf(',')) + ',"follow":["doc:1"],"unfollow":[]}'])
    // Another document: followed on the same stream, and the first let go after the grace period.
    await act(async () => open('doc:2'))
    await until(() => container.textContent === 'two')
    await until(() => requests.some((body) => body.includes('"unfollow":["doc:1"]')), 2000)
    expect(requests.some((body) => body.includes('"follow":["doc:2"]'))).toBe(true)
    await served.universe.store('doc:1').set('one again')
    await served.universe.store('doc:2').set('two again')
    await until(() => container.textContent === 'two again')
    expect(replica.store('doc:1').get()).toBe('one')
    // Unmounted and mounted again within the grace period: nothing is asked of the server.
    const asked = requests.length
    await act(async () => open(undefined))
    await act(async () => open('doc:2'))
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(requests).toHaveLength(asked)
  })
})

describe('review: following under StrictMode and a changing key', () => {
  it('a double mount asks once and keeps following; a changed key follows the new store and lets the old go', async () => {
    const served = await serveExpress(createUniverse({ stores: {}, allowStore: () => true }))
    cleanups.push(served.close)
    await served.universe.store('doc:1', 'first').set('one')
    await served.universe.store('doc:2', 'first').set('two')
    const requests: string[] = []
    const recordingFetch: typeof fetch = async (input, init) => {
      const response = await globalThis.fetch(input, init)
      if (init?.method === 'POST') requests.push(String(init.body))
      return response
    }
    const replica = connect({ url: served.url, EventSource, tabs: false, stores: [], followGraceMs: 50, fetch: recordingFetch })
    cleanups.push(() => replica.close())
    let open: (doc: string) => void = () => {}
    function Doc(props: { id: string }) {
      return <b>{String(useStore<string>(props.id))}</b>
    }
    function Page() {
      const [doc, setDoc] = useState('doc:1')
      open = setDoc
      return <Doc id={doc} />
    }
    const { container } = mount(replica, <StrictMode><Page /></StrictMode>)
    await until(() => container.textContent === 'one')
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(requests.filter((body) => body.includes('"doc:1"'))).toHaveLength(1)
    // Past the grace period, still followed: the double mount left one holder.
    await served.universe.store('doc:1').set('one again')
    await until(() => container.textContent === 'one again')
    // The same component, another key.
    await act(async () => open('doc:2'))
    await until(() => container.textContent === 'two')
    await until(() => requests.some((body) => body.includes('"unfollow":["doc:1"]')), 2000)
    await served.universe.store('doc:2').set('two again')
    await until(() => container.textContent === 'two again')
  })
})
