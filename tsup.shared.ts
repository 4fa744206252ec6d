import { defineConfig, type Options } from 'tsup'

/** How every package builds: ESM and CJS with declarations, source maps, dependencies left out. */
export function packageBuild(entry: Record<string, string>, external: string[], extra: Options = {}) {
  const options: Options = { format: ['esm', 'cjs'], dts: true, sourcemap: true, clean: true, target: 'es2022', ...extra }
  return defineConfig({ ...options, entry, external })
}
