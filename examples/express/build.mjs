// Bundles the browser side of the demo (React, zuno, zuno-react and the app) into dist/app.js.
import { build } from 'esbuild'
import { bundleOptions } from './bundleOptions.mjs'

await build(bundleOptions)
