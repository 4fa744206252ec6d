// Run by the packaging test: an ESM server on Express, on an ephemeral port of 127.0.0.1.
// It prints one JSON line with its port, then one per change of the `counter` store.
import express from 'express'
import { createUniverse } from 'zuno/server'
import { zuno } from 'zuno-express'

const universe = createUniverse({ stores: { counter: 0 } })
const app = express()
app.use('/zuno', zuno(universe))
const server = app.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }))
})
universe.store('counter').subscribe((counter) => console.log(JSON.stringify({ counter })))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
