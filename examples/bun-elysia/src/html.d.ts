// What `import page from './index.html'` gives on Bun: an HTML bundle, which Elysia serves as a route.
// With @types/bun installed, Bun's own declaration says the same.
declare module '*.html' {
  const bundle: { index: string }
  export default bundle
}
