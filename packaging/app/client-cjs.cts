// Type-checked only (nodenext): the same client where `require` resolves the CJS declarations.
import { EventSource } from 'eventsource'
import { connect } from 'zuno'

const universe = connect({ url: 'http://127.0.0.1:3000/zuno', EventSource })
const counter = universe.store<number>('counter', 0)
const next: Promise<number> = counter.set(1)
void next.finally(() => universe.close())
