/**
 * The presence hooks under a fresh-context review's attacks (issue #18): each test reproduced a
 * finding and failed until its fix. A real server, real replicas with the `eventsource` client.
 */
import { act, version as reactVersion, useEffect, useState } from 'react'
import { describe, expect, it } from 'vitest'
import { useBroadcast, useMyPresence, useOthers } from 'zuno-react'
import { until } from '../../zuno/test/support/until'
import { mount, settle } from './support/mount'
import { twoReplicas } from './support/twoReplicas'

describe(`zuno-react presence, as a review attacked it, on React ${reactVersion}`, () => {
  it('R18-9: a set and a broadcast from a child’s mount effect (it runs before the parent’s hook has joined) go out once it has', async () => {
    const { a, b } = await twoReplicas()
    const bRoom = b.presence('doc:1', 'b')
    const heard: unknown[] = []
    bRoom.onBroadcast((data) => heard.push(data))
    function Child({ setMe, send }: { setMe: (next: string) => void; send: (data: unknown) => void }) {
      useEffect(() => {
        setMe('ready')
        send('joined')
      }, [setMe, send])
      return null
    }
    function Parent() {
      const [me, setMe] = useMyPresence('doc:1', 'loading')
      const send = useBroadcast('doc:1')
      return (
        <>
          <span>{me}</span>
          <Child setMe={setMe} send={send} />
        </>
      )
    }
    // B is in the room on the server before A's events (a broadcast reaches whoever is there): A
    // shows in B's room first, through a handle of its own, let go once the component holds the room.
    const before = a.presence('doc:1', 'before')
    await until(() => bRoom.others().length === 1, 15_000)
    mount(a, <Parent />)
    before.leave()
    await until(async () => {
      await settle()
      return heard.length === 1 && bRoom.others()[0]?.state === 'ready'
    }, 15_000)
    // the room shows 'ready' and B heard 'joined' (or the calls throw). (It failed so before its fix.)
    expect(bRoom.others().map((peer) => peer.state)).toEqual(['ready'])
    expect(heard).toEqual(['joined'])
  })

  it('R18-13: switching between two views of the same room (one unmounts as the other mounts) keeps showing the others', async () => {
    const { a, b } = await twoReplicas()
    const bRoom = b.presence('doc:1', 'b')
    let show: (view: 'list' | 'grid') => void = () => {}
    let shown = ''
    function List() {
      const others = useOthers<string>('doc:1')
      shown = `list: ${others.map((peer) => peer.state).join(',')}`
      return <span>{shown}</span>
    }
    function Grid() {
      const others = useOthers<string>('doc:1')
      shown = `grid: ${others.map((peer) => peer.state).join(',')}`
      return <span>{shown}</span>
    }
    function Page() {
      const [view, setView] = useState<'list' | 'grid'>('list')
      show = setView
      return view === 'list' ? <List /> : <Grid />
    }
    mount(a, <Page />)
    await until(() => bRoom.others().length === 1)
    await settle(500)
    expect(shown).toBe('list: b')
    act(() => show('grid'))
    await settle(1500)
    bRoom.set('b moved')
    await settle(1000)
    // 'grid: b moved'. (It failed so before its fix.)
    expect(shown).toBe('grid: b moved')
  })
})
