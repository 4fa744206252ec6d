import { type PointerEvent, type ReactNode, useEffect, useRef } from 'react'
import type { PresencePeer } from 'zuno'
import { useMyPresence, useOthers } from 'zuno-react'

/** The room: the todos store's key, so whoever may read the list may be seen over it. */
export const PRESENCE_ROOM = 'todos'

/** What each tab shows the others: who it is, and where its pointer is over the todo list (px from its top left). */
export interface Presence {
  name: string
  color: string
  cursor: { x: number; y: number } | null
}

/** Before the tab has picked a name (the server render, and hydration): nobody to show. */
const UNNAMED: Presence = { name: '', color: '', cursor: null }

const COLORS = ['#3a5bd9', '#2ea44f', '#d73a49', '#c9a227', '#8250df', '#1b8a8a', '#d4621c', '#bf3989']
const ANIMALS = ['Otter', 'Heron', 'Lynx', 'Badger', 'Gecko', 'Puffin', 'Marten', 'Ibis', 'Newt', 'Wren', 'Yak', 'Koala']

/** A name and a color for this tab, picked once it runs in the browser. */
function pickIdentity(): Pick<Presence, 'name' | 'color'> {
  const pick = <T,>(list: readonly T[]) => list[Math.floor(Math.random() * list.length)] as T
  return { name: `${pick(ANIMALS)} ${Math.floor(Math.random() * 90) + 10}`, color: pick(COLORS) }
}

/** A peer's label, from its value, or from its id for a peer that shows none (one that only watches). */
function labelOf(peer: PresencePeer<Presence | null>): Pick<Presence, 'name' | 'color'> {
  const { name, color } = peer.state ?? UNNAMED
  const hash = [...peer.id].reduce((sum, char) => (sum * 31 + char.charCodeAt(0)) >>> 0, 0)
  return { name: name || `Guest ${peer.id.slice(0, 4)}`, color: color || (COLORS[hash % COLORS.length] as string) }
}

/** Who is in the room: this tab ("you", once it has a name) and the others, in the order they joined. */
export function Online() {
  const [me, setMe] = useMyPresence<Presence>(PRESENCE_ROOM, UNNAMED)
  const others = useOthers<Presence | null>(PRESENCE_ROOM)
  // After hydration, never in render: the server's markup and the first client render show nobody.
  useEffect(() => setMe((current) => (current.name ? current : { ...current, ...pickIdentity() })), [setMe])
  return (
    <section className="online" data-testid="online">
      <h2>Online</h2>
      <ul data-testid="online-list">
        {me.name ? <Peer name={me.name} color={me.color} you /> : null}
        {others.map((peer) => (
          <Peer key={peer.id} id={peer.id} {...labelOf(peer)} />
        ))}
      </ul>
    </section>
  )
}

function Peer({ id, name, color, you = false }: { id?: string; name: string; color: string; you?: boolean }) {
  return (
    <li data-testid="online-peer" data-peer={id} data-name={name} data-you={you ? '' : undefined}>
      <span className="swatch" style={{ background: color }} />
      {name}
      {you ? <span className="meta">(you)</span> : null}
    </li>
  )
}

/**
 * The todo list's area, where this tab's pointer is published (every move: the replica sends the
 * latest at most 20 times a second) and the others' are drawn; it hides when the pointer leaves.
 */
export function CursorBoard({ children }: { children: ReactNode }) {
  const [, setMe] = useMyPresence<Presence>(PRESENCE_ROOM, UNNAMED)
  const others = useOthers<Presence | null>(PRESENCE_ROOM)
  const board = useRef<HTMLDivElement>(null)
  const move = (event: PointerEvent<HTMLDivElement>) => {
    const box = board.current?.getBoundingClientRect()
    if (box === undefined) return
    const cursor = { x: Math.round(event.clientX - box.left), y: Math.round(event.clientY - box.top) }
    setMe((current) => ({ ...current, cursor }))
  }
  const leave = () => setMe((current) => ({ ...current, cursor: null }))
  return (
    <div className="board" data-testid="todo-board" ref={board} onPointerMove={move} onPointerLeave={leave}>
      {children}
      {others.map((peer) => {
        const cursor = peer.state?.cursor
        if (cursor == null || typeof cursor.x !== 'number' || typeof cursor.y !== 'number') return null
        const { name, color } = labelOf(peer)
        return (
          <div key={peer.id} className="cursor" data-testid="cursor" data-peer={peer.id} data-name={name} style={{ left: cursor.x, top: cursor.y, color }}>
            <span style={{ background: color }}>{name}</span>
          </div>
        )
      })}
    </div>
  )
}
