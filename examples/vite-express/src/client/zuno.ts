/** The browser's replica of the app's stores, and the React hooks typed from the same definition. */
import { connect } from 'zuno'
import { createZunoHooks } from 'zuno-react'
import { app } from '../app'

// '/zuno' is on the page's own origin: Express in production, Vite's proxy to Express in development.
export const replica = connect({ app, url: '/zuno' })

export const { useStore, useStoreApi } = createZunoHooks<typeof app>()
