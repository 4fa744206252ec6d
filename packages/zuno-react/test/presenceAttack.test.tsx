/**
 * The presence hooks under a second fresh-context review's attacks (issue #18): each test
 * reproduced a finding and failed until its fix. A real server, real replicas with the
 * `eventsource` client.
 */
import { act, version as reactVersion } from 'react'
import { describe, expect, it } from 'vitest'
import { useMyPresence } from 'zuno-react'
import { until } from '../../zuno/test/support/until'
import { mount, settle } from './support/mount'
import { twoReplicas } from './support/twoReplicas'

describe(`zuno-react presence, as a second review attacked it, on React ${reactVersion}`, () => {
  it('R18b-10: useMyPresence shows null once set(null), as the others see it, not `initial` again', async () => {
    const { a, b } = await twoReplicas()
    const bRoom = b.presence('doc:1', 'b')
    let setCursor: ((next: { x: number } | null) => void) | undefined
    function Cursor() {
      const [me, setMe] = useMyPresence<{ x: number } | null>('doc:1', { x: 1 })
      setCursor = setMe
      return <span>{me === null ? 'no cursor' : `at ${me.x}`}</span>
    }
    const { container } = mount(a, <Cursor />)
    await until(async () => {
      await settle()
      return bRoom.others().length === 1
    }, 15_000)
    // The pointer leaves the page: the cursor is hidden (a bare null is a valid value).
    act(() => setCursor?.(null))
    await until(async () => {
      await settle()
      return bRoom.others()[0]?.state === null
    }, 15_000)
    expect(container.textContent).toBe('no cursor')
  })
})
