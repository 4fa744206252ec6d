// `pnpm release:pack`: the tarballs a release would publish, in .release/ (nothing is published).
import { rmSync } from 'node:fs'
import { join, relative } from 'node:path'
import { kB, packAll, root } from './pack.mjs'

const dest = join(root, '.release')
rmSync(dest, { recursive: true, force: true })
const packed = packAll(dest)
for (const { tarball, bytes } of packed) console.log(`${relative(root, tarball).padEnd(40)} ${kB(bytes).padStart(9)}`)
const core = packed.find((p) => p.name === 'zuno') ?? packed[0]
if (core) console.log(`\nInstall outside this repository with: npm install ${core.tarball}`)
