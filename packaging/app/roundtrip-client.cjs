// Run by the packaging test: two CJS replicas (`require`). One sets the counter; the other must
// see the value arrive through the server. Prints one JSON line with what the second one saw.
// The writer computes its writer tag with Zuno's own SHA-256 (`subtle: null`), as a browser without
// WebCrypto does: the chunk it loads on demand must be in the tarball and load through `require`.
const { connect } = require('zuno')
const { EventSource } = require('eventsource')

const url = process.argv[2]
const writer = connect({ url, EventSource, subtle: null })
const reader = connect({ url, EventSource })
const seen = reader.store('counter', 0)

const arrived = new Promise((resolve) => {
  const stop = seen.subscribe((value) => {
    if (value === 41) {
      stop()
      resolve(value)
    }
  })
})

async function main() {
  const version = await writer.store('counter', 0).set(41)
  const value = await arrived
  console.log(JSON.stringify({ version, seenBySecondClient: value }))
  writer.close()
  reader.close()
  process.exit(0)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
