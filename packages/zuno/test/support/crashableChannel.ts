import type { BroadcastChannelConstructor } from '../../src/client/tabs'
import type { SimBrowser } from '../simulation/simBrowser'

/**
 * A BroadcastChannel class of `browser` for a tab that can crash: after `crash()`, nothing the tab
 * posts leaves it, so it sends no goodbye (as a crashed tab, or one closed without running close()).
 */
export function crashableChannel(browser: SimBrowser): { Channel: BroadcastChannelConstructor; crash: () => void } {
  let crashed = false
  const Base = browser.channelFor()
  const Channel = class extends Base {
    override postMessage(message: unknown): void {
      if (!crashed) super.postMessage(message)
    }
  } as BroadcastChannelConstructor
  return {
    Channel,
    crash: () => {
      crashed = true
    },
  }
}
