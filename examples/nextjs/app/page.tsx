import { universe } from '../lib/zuno-server'
import { Counter, Status, Todos } from './board'
import { ZunoRoot } from './zuno-provider'

// Rendered on every request, from the state the universe holds at that moment.
export const dynamic = 'force-dynamic'

export default async function Page() {
  await universe.ready
  const state = universe.snapshot()
  return (
    <main>
      <h1>Zuno on Next.js</h1>
      <ZunoRoot state={state}>
        <Status />
        <Counter />
        <Todos />
      </ZunoRoot>
    </main>
  )
}
