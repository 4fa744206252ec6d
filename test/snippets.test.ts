/**
 * Every TypeScript block in the README files and docs/ compiles against the packages' sources, so a
 * snippet cannot drift from the API unnoticed. A block that is a fragment (it uses a `universe` made
 * elsewhere, say) says what it needs in an HTML comment just above it, which readers do not see:
 *
 *     <!-- compiled with:
 *     import { createUniverse } from 'zuno/server'
 *     declare const universe: ReturnType<typeof createUniverse>
 *     -->
 *
 * A guide's block that shows a file of a checked example (which that example's own build compiles and
 * its tests run) names the file instead, and must appear in it verbatim (a whole file or a run of its
 * lines), so the guide cannot drift from the example either:
 *
 *     <!-- from: examples/nextjs/app/zuno/[...zuno]/route.ts -->
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Where bare imports are looked up, in turn: the root, then each package and example (pnpm links each one's own dependencies there). */
const resolutionDirs = [root, ...['packages', 'examples'].flatMap((parent) => readdirSync(join(root, parent)).map((name) => join(root, parent, name)))]

/** One fenced block, with where it came from and what it is compiled with. */
interface Snippet {
  file: string
  /** Line of the block's first code line in the Markdown file (1-based). */
  line: number
  context: string
  code: string
  tsx: boolean
  /** The example file this block is mirrored from (a `<!-- from: path -->` comment), if any. */
  from?: string
}

function markdownFiles(): string[] {
  const docs = readdirSync(join(root, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.md') && !name.startsWith('api') && !name.startsWith('benchmarks'))
    .map((name) => join('docs', name))
  const packages = readdirSync(join(root, 'packages')).map((name) => join('packages', name, 'README.md'))
  return ['README.md', ...docs, ...packages].filter((file) => existsSync(join(root, file)))
}

/** A TypeScript fence, also indented (a block inside a list item). */
const FENCE = /^(\s*)```(ts|tsx|typescript)\s*$/
/** The comment naming the example file a block is mirrored from. */
const FROM = /^\s*<!-- from: (\S+) -->\s*$/

export function snippetsOf(file: string, text: string): Snippet[] {
  const lines = text.split('\n')
  const snippets: Snippet[] = []
  for (let i = 0; i < lines.length; i++) {
    const fence = FENCE.exec(lines[i] as string)
    if (fence === null) continue
    const start = i + 1
    const indent = (fence[1] as string).length
    let end = start
    while (end < lines.length && !(lines[end] as string).trimStart().startsWith('```')) end++
    // The comment that ends on the line above the fence, if it is a "compiled with" one.
    let context = ''
    if ((lines[i - 1] ?? '').trim() === '-->') {
      let open = i - 2
      while (open >= 0 && !(lines[open] as string).trimStart().startsWith('<!--')) open--
      if ((lines[open] ?? '').trim() === '<!-- compiled with:') context = lines.slice(open + 1, i - 1).join('\n')
    }
    const code = lines.slice(start, end).map((line) => line.slice(Math.min(indent, line.length - line.trimStart().length)))
    const from = FROM.exec(lines[i - 1] ?? '')?.[1]
    snippets.push({ file, line: start + 1, context, code: code.join('\n'), tsx: fence[2] === 'tsx', ...(from === undefined ? {} : { from }) })
    i = end
  }
  return snippets
}

/** Compiles the snippets, each as a module of its own, and returns each diagnostic as `file:line: message`. */
function compile(snippets: Snippet[]): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })
  if (config === undefined) throw new Error('root tsconfig.json not readable')
  const options: ts.CompilerOptions = { ...config.options, noEmit: true, noUnusedLocals: false, noUnusedParameters: false }
  const virtual = new Map<string, { snippet: Snippet; offset: number; text: string }>()
  snippets.forEach((snippet, index) => {
    const name = join(root, '.snippets', `${index}-${snippet.file.replace(/[/.]/g, '_')}-${snippet.line}.${snippet.tsx ? 'tsx' : 'ts'}`)
    const offset = snippet.context === '' ? 0 : snippet.context.split('\n').length
    // `export {}`: every snippet is a module, so two of them may both declare `universe`.
    virtual.set(name, { snippet, offset, text: `${snippet.context}${snippet.context === '' ? '' : '\n'}${snippet.code}\nexport {}\n` })
  })
  const host = ts.createCompilerHost(options)
  const readFile = host.readFile.bind(host)
  const getSourceFile = host.getSourceFile.bind(host)
  host.fileExists = (name) => virtual.has(name) || ts.sys.fileExists(name)
  host.readFile = (name) => virtual.get(name)?.text ?? readFile(name)
  host.getSourceFile = (name, language) => {
    const entry = virtual.get(name)
    return entry === undefined ? getSourceFile(name, language) : ts.createSourceFile(name, entry.text, language, true)
  }
  host.resolveModuleNameLiterals = (literals, containingFile) =>
    literals.map((literal) => {
      // Relative imports and the workspace's own packages (through the root's paths) resolve from the file itself.
      const from = virtual.has(containingFile) ? resolutionDirs : [dirname(containingFile)]
      for (const dir of from) {
        const found = ts.resolveModuleName(literal.text, join(dir, 'snippet.ts'), options, ts.sys)
        if (found.resolvedModule !== undefined) return found
      }
      return { resolvedModule: undefined }
    })
  const program = ts.createProgram([...virtual.keys()], options, host)
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')
    const entry = diagnostic.file === undefined ? undefined : virtual.get(diagnostic.file.fileName)
    if (entry === undefined || diagnostic.start === undefined) return `${diagnostic.file ? relative(root, diagnostic.file.fileName) : '(global)'}: ${message}`
    const at = (diagnostic.file as ts.SourceFile).getLineAndCharacterOfPosition(diagnostic.start).line
    const where = at < entry.offset ? `${entry.snippet.file}:${entry.snippet.line} (its "compiled with" comment)` : `${entry.snippet.file}:${entry.snippet.line + at - entry.offset}`
    return `${where}: ${message}`
  })
}

/** Each mirrored block that is not, verbatim, in the example file it names, as `file:line: why`. */
export function mirrorMismatches(snippets: Snippet[]): string[] {
  return snippets.flatMap(({ file, line, code, from }) => {
    if (from === undefined) return []
    const source = join(root, from)
    if (!existsSync(source)) return [`${file}:${line}: ${from} does not exist`]
    const text = readFileSync(source, 'utf8')
    // A run of whole lines: the block starts at a line start and ends at a line end.
    const at = `\n${text}\n`.indexOf(`\n${code}\n`)
    return at === -1 ? [`${file}:${line}: the block is not a run of lines of ${from}`] : []
  })
}

describe('code in the docs', () => {
  const all = markdownFiles().flatMap((file) => snippetsOf(file, readFileSync(join(root, file), 'utf8')))
  const snippets = all.filter((snippet) => snippet.from === undefined)

  it('finds the TypeScript blocks of the README files and docs/', () => {
    expect(snippets.length).toBeGreaterThan(15)
  })

  it('compiles every one of them', () => {
    expect(compile(snippets)).toEqual([])
  }, 120_000)

  it('finds every block mirrored from an example in its file, verbatim', () => {
    expect(mirrorMismatches(all)).toEqual([])
  })

  it('reports a mirrored block that has drifted from its example', () => {
    const drifted = snippetsOf('docs/example.md', "<!-- from: examples/express/src/main.ts -->\n```ts\nconst surely = 'not in the demo'\n```\n")
    expect(drifted[0]?.from).toBe('examples/express/src/main.ts')
    expect(mirrorMismatches(drifted)).toEqual(['docs/example.md:3: the block is not a run of lines of examples/express/src/main.ts'])
    const missing = snippetsOf('docs/example.md', '<!-- from: examples/none.ts -->\n```ts\nx\n```\n')
    expect(mirrorMismatches(missing)).toEqual(['docs/example.md:3: examples/none.ts does not exist'])
    const real = readFileSync(join(root, 'examples/express/src/main.ts'), 'utf8').split('\n').slice(0, 3).join('\n')
    expect(mirrorMismatches(snippetsOf('docs/example.md', `<!-- from: examples/express/src/main.ts -->\n\`\`\`ts\n${real}\n\`\`\`\n`))).toEqual([])
  })

  it('reports a block that does not compile, at its line in the Markdown', () => {
    const broken = snippetsOf('docs/example.md', "Text\n\n```ts\nimport { connect } from 'zuno'\nconnect({ url: 1 })\n```\n")
    const errors = compile(broken)
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(/^docs\/example\.md:5: /)
  }, 120_000)
})
