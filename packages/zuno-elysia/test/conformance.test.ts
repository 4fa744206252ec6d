import { describe } from 'vitest'
import { runConformanceSuite } from '../../zuno/test/conformance/suite'
import { haveBun, startElysiaOnNode, startOnBun } from './targets'

runConformanceSuite({ name: 'Elysia on Node.js', start: startElysiaOnNode })

describe.skipIf(!haveBun)('on Bun', () => {
  runConformanceSuite({ name: 'Elysia on Bun', start: (config) => startOnBun('elysia', config) })
  runConformanceSuite({ name: 'fetch handler on Bun.serve', start: (config) => startOnBun('fetch', config) })
})
