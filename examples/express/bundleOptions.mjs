/**
 * How the demo's browser bundle is built (`build.mjs`), from the packages' TypeScript sources:
 * the repository's tsconfig maps `zuno` and `zuno-react` to them for every file, the packages'
 * own included, so a fresh clone needs no `pnpm build` first.
 */
export const bundleOptions = {
  entryPoints: [new URL('src/app/client.tsx', import.meta.url).pathname],
  outfile: new URL('dist/app.js', import.meta.url).pathname,
  tsconfig: new URL('../../tsconfig.json', import.meta.url).pathname,
  bundle: true,
  format: 'esm',
  target: 'es2022',
  jsx: 'automatic',
  minify: true,
  sourcemap: true,
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
}
