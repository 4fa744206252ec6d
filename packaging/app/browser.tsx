// The browser entry that esbuild bundles: it must pull in no Node.js built-in.
import { createRoot } from 'react-dom/client'
import { connect } from 'zuno'
import { ZunoProvider } from 'zuno-react'
import { Counter } from './component.js'

const universe = connect({ url: '/zuno' })
const root = document.getElementById('root')
if (root !== null) {
  createRoot(root).render(
    <ZunoProvider universe={universe}>
      <Counter />
    </ZunoProvider>,
  )
}
