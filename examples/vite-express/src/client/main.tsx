import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { ZunoProvider } from 'zuno-react'
import { App } from './App'
import { replica } from './zuno'

createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode>
    <ZunoProvider universe={replica}>
      <App />
    </ZunoProvider>
  </StrictMode>,
)
