import { defineConfig, type Options } from 'tsup'

/**
 * How every package builds: ESM and CJS with declarations, source maps, dependencies left out.
 * The maps point at file names only (no `sourcesContent`): embedding the sources made them most of the tarball.
 */
export function packageBuild(entry: Record<string, string>, external: string[], extra: Options = {}) {
  const options: Options = {
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'es2022',
    esbuildOptions(esbuild) {
      esbuild.sourcesContent = false
    },
    ...extra,
  }
  return defineConfig({ ...options, entry, external })
}
