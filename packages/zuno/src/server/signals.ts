/**
 * What the instances that share a storage tell each other on its bus (see `InstanceBus`): a
 * universe's signals, and the in-process bus of a storage that only one process opens.
 */
import type { ErrorCode, PresenceOp } from '../protocol'
import { notifyEach } from './notify'
import type { PresenceOutcome, PresenceSignal } from './presence'
import type { InstanceBus } from './storage'

/** A signal between instances. `to` names a sync server (its id is the first part of its stream ids). */
export type InstanceSignal =
  /** The principal's access changed: every stream of theirs asks the rules again. */
  | {
      /** The kind of signal. */
      type: 'revalidate'
      /** The principal's id. */
      principal: string
    }
  /** Signals may have been lost (the bus reconnected): every stream, of every principal, asks the rules again. */
  | {
      /** The kind of signal. */
      type: 'revalidateAll'
    }
  /** A `POST /subscribe` that reached another sync server than the stream's. */
  | {
      /** The kind of signal. */
      type: 'subscribe'
      /** The sync server holding the stream. */
      to: string
      /** The sync server waiting for the answer. */
      from: string
      /** Pairs the answer with the request. */
      requestId: string
      /** The id of the principal who asked: only their own streams may be changed. */
      principal: string
      /** The stream. */
      streamId: string
      /** Stores to start following (already authorized by the sync server that was asked). */
      follow: string[]
      /** Stores to stop following. */
      unfollow: string[]
    }
  /** A `POST /presence` that reached another sync server than the stream's. */
  | {
      /** The kind of signal. */
      type: 'presenceOps'
      /** The sync server holding the stream. */
      to: string
      /** The sync server waiting for the answer. */
      from: string
      /** Pairs the answer with the request. */
      requestId: string
      /** The id of the principal who asked: only their own streams may carry their tabs. */
      principal: string
      /** The stream. */
      streamId: string
      /** The ops (already checked and authorized by the sync server that was asked). */
      ops: PresenceOp[]
    }
  /** What presence tells the other instances: rooms' changes, and a new instance's question. */
  | PresenceSignal
  /** The answer to a routed `subscribe` or `presenceOps`. */
  | {
      /** The kind of signal. */
      type: 'subscribed'
      /** The sync server waiting for it. */
      to: string
      /** The request's id. */
      requestId: string
      /** For `presenceOps`: what was done. */
      presence?: PresenceOutcome
      /** Why it failed, if it did. */
      error?: {
        /** The error's code. */
        code: ErrorCode
        /** The error in words. */
        message: string
      }
    }

/** A bus within one process: what a storage that no other process opens offers its universes. */
export function createLocalBus(): InstanceBus {
  const listeners = new Set<(message: string) => void>()
  return {
    publish(message) {
      notifyEach(listeners, message, 'a bus listener')
    },
    subscribe(listener) {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    },
  }
}
