import { act, StrictMode, version as reactVersion } from 'react'
import { renderToString } from 'react-dom/server'
import { describe, expect, it } from 'vitest'
import { createSnapshotUniverse } from 'zuno'
import { useBroadcast, useMyPresence, useOthers, ZunoProvider } from 'zuno-react'
import { until } from '../../zuno/test/support/until'
import { mount, settle } from './support/mount'
import { twoReplicas } from './support/twoReplicas'

describe(`zuno-react presence on React ${reactVersion}`, () => {
  it('useMyPresence and useOthers: two replicas see each other move, and one that unmounts leave', async () => {
    const { a, b } = await twoReplicas()
    let moveA: (next: { x: number }) => void = () => {}
    function Cursor() {
      const [me, setMe] = useMyPresence('doc:1', { x: 0 })
      moveA = setMe
      const others = useOthers<{ x: number }>('doc:1')
      return <span>{`me ${me.x}; others ${others.map((peer) => peer.state?.x).join(',')}`}</span>
    }
    function Watcher() {
      const [me] = useMyPresence('doc:1', { x: 100 })
      const others = useOthers<{ x: number }>('doc:1')
      return <span>{`me ${me.x}; others ${others.map((peer) => peer.state?.x).join(',')}`}</span>
    }
    const first = mount(a, <Cursor />)
    const second = mount(b, <Watcher />)
    await until(async () => {
      await settle()
      return first.container.textContent === 'me 0; others 100' && second.container.textContent === 'me 100; others 0'
    })
    act(() => moveA({ x: 7 }))
    expect(first.container.textContent).toBe('me 7; others 100')
    await until(async () => {
      await settle()
      return second.container.textContent === 'me 100; others 7'
    })
    first.unmount()
    await until(async () => {
      await settle()
      return second.container.textContent === 'me 100; others '
    })
  })

  it('useOthers with a selector re-renders only when what it selects changes', async () => {
    const { a, b } = await twoReplicas()
    let renders = 0
    function Count() {
      renders += 1
      return <span>{useOthers('doc:1', (others) => others.length)}</span>
    }
    const counting = mount(a, <Count />)
    const mover = b.presence('doc:1', 0)
    await until(async () => {
      await settle()
      return counting.container.textContent === '1'
    })
    const before = renders
    for (let x = 1; x <= 5; x++) {
      mover.set(x)
      await settle(80)
    }
    await until(() => a.presence('doc:1').others()[0]?.state === 5)
    a.presence('doc:1').leave()
    expect(renders).toBe(before)
    mover.leave()
    await until(async () => {
      await settle()
      return counting.container.textContent === '0'
    })
  })

  it('a StrictMode mount joins once: the others never see it leave and come back', async () => {
    const { a, b } = await twoReplicas()
    const watching = b.presence('doc:1', 'watcher')
    // From the moment the watcher saw the strict component's tab: it never leaves again.
    const counts: number[] = []
    let seen = false
    watching.subscribe(() => {
      seen ||= watching.others().length === 1
      if (seen) counts.push(watching.others().length)
    })
    function Here() {
      useMyPresence('doc:1', 'strict')
      return null
    }
    mount(
      a,
      <StrictMode>
        <Here />
      </StrictMode>,
    )
    await until(() => watching.others().length === 1)
    await settle(300)
    expect(watching.others().map((peer) => peer.state)).toEqual(['strict'])
    expect(counts.filter((count) => count === 0)).toEqual([])
  })

  it('useBroadcast sends to the others and hears theirs while mounted', async () => {
    const { a, b } = await twoReplicas()
    const heard: unknown[] = []
    let send: (data: unknown) => void = () => {}
    function Reactions() {
      send = useBroadcast('doc:1', (data) => heard.push(data))
      return null
    }
    const mounted = mount(a, <Reactions />)
    const other = b.presence('doc:1', null)
    const fromOther: unknown[] = []
    other.onBroadcast((data) => fromOther.push(data))
    await until(() => other.others().length === 1)
    act(() => send('👋'))
    await until(() => fromOther.length === 1)
    expect(fromOther).toEqual(['👋'])
    other.broadcast('🙌')
    await until(async () => {
      await settle()
      return heard.length === 1
    })
    expect(heard).toEqual(['🙌'])
    mounted.unmount()
    await until(() => other.others().length === 0)
  })

  it('renders nobody on the server (a snapshot universe has no presence), and the initial value as mine', () => {
    function Page() {
      const [me] = useMyPresence('doc:1', 'me')
      const others = useOthers('doc:1')
      return <span>{`${me}:${others.length}`}</span>
    }
    const html = renderToString(
      <ZunoProvider universe={createSnapshotUniverse({ stores: {}, cursor: 'e-0' })}>
        <Page />
      </ZunoProvider>,
    )
    expect(html).toContain('me:0')
  })
})
