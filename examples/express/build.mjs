// Bundles the browser side of the demo (React, zuno, zuno-react and the app) into dist/app.js.
import { build } from 'esbuild'

await build({
  entryPoints: ['src/app/client.tsx'],
  outfile: 'dist/app.js',
  bundle: true,
  format: 'esm',
  target: 'es2022',
  jsx: 'automatic',
  minify: true,
  sourcemap: true,
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
})
