import { EventSource } from 'eventsource'
import { createElement } from 'react'
import { renderToString } from 'react-dom/server'
import { describe, expect, it } from 'vitest'
import { connect } from 'zuno'
import { ZunoProvider } from 'zuno-react'
import { until } from '../../../packages/zuno/test/support/until'
import { startProxy } from '../../../packages/zuno/test/support/zunoBehindProxy'
import { App } from '../src/app/App'
import { startDemo } from '../src/demoServer'

describe('the demo page’s errors', () => {
  it('shows a network failure under its own delivery heading, not under Conflicts', async () => {
    // The real demo behind a real proxy that streams but drops every proposal's connection unanswered.
    const demo = await startDemo(0)
    const proxy = await startProxy({ port: Number(new URL(demo.url).port) }, (req) => (req.method === 'POST' ? { status: 0 } : undefined))
    const replica = connect({ url: proxy.url, EventSource })
    try {
      await until(() => replica.status.get() === 'connected')
      void replica.store<number>('counter', 0).set((n) => n + 1).catch(() => {})
      await until(() => replica.lastError.get()?.code === 'network')
      const html = renderToString(createElement(ZunoProvider, { universe: replica }, createElement(App)))
      expect(html).toContain('data-testid="last-error" data-kind="delivery"')
      expect(html).toContain('Delivery: not sent yet, will retry')
      expect(html).toContain('last error: <!-- -->network')
      expect(html).not.toContain('data-testid="conflicts"')
      expect(html).not.toContain('Conflicts')
    } finally {
      replica.close()
      await proxy.close()
      await demo.close()
    }
  })
})
