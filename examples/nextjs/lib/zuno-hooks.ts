import { createZunoHooks } from 'zuno-react'
import type { app } from './zuno'

export const { useStore, useStoreApi, useStoreVersion } = createZunoHooks<typeof app>()
