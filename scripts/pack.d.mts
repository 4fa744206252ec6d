export declare const root: string
export declare const pnpm: string[]
export declare function packageDirs(): string[]
export interface Packed {
  name: string
  version: string
  dir: string
  tarball: string
  bytes: number
}
export declare function packAll(dest: string): Packed[]
export declare function kB(bytes: number): string
