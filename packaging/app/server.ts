// Type-checked only: a server as a newcomer would write it, on node:http and on Express.
import { createServer } from 'node:http'
import express from 'express'
import { createNodeHandler, createUniverse } from 'zuno/server'
import { zuno } from 'zuno-express'

interface Todo {
  id: string
  text: string
}

const universe = createUniverse({ stores: { counter: 0, todos: [] as Todo[] } })

const handler = createNodeHandler(universe)
createServer(handler).listen(0, '127.0.0.1')

const app = express()
app.use('/zuno', zuno(universe))
app.listen(0, '127.0.0.1')

const counter = universe.store<number>('counter')
counter.subscribe((value: number) => console.log('counter', value))
const version: number = await counter.set((n) => n + 1)
console.log(version)
await handler.shutdown()
