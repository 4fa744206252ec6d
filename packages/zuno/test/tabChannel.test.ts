/**
 * Tabs of two builds whose messages differ never share a channel: the name carries the message
 * format. Format 3 relays changes as patches, which a tab of format 2 would read as no state at all.
 */
import { describe, expect, it } from 'vitest'
import { tabChannelName } from '../src/client/tabChannel'

describe('tabChannelName', () => {
  it('names the message format, so a tab of the build before runtime follows joins a group of its own', () => {
    const name = tabChannelName('http://127.0.0.1:3000/zuno', 'ada', ['todos', 'counter'])
    expect(name).toBe('zuno4:http://127.0.0.1:3000/zuno:ada:counter,todos')
    // What a build of format 3 named the same universe's channel.
    expect(name).not.toBe('zuno3:http://127.0.0.1:3000/zuno:ada:counter,todos')
  })
})
