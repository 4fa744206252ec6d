/**
 * `zuno`: stores, universes and the replica client. Browser-safe; the server lives in `zuno/server`.
 *
 * @module zuno
 */
export { applyUpdater } from './store'
export type { Listener, Store, Updater } from './store'
export { assertStoreKey, Universe } from './universe'
export type { UniverseRole } from './universe'
export { connect, ReplicaUniverse } from './client/replicaUniverse'
export type {
  ConflictInfo,
  ConflictPolicy,
  MergeInput,
  ReadableValue,
  RefusedOp,
  ReplicaOptions,
} from './client/replicaUniverse'
export type { BroadcastSender, PresencePeer, PresenceRoom } from './client/presence'
export { createSnapshotUniverse, SnapshotUniverse, type SnapshotUniverseOptions } from './client/snapshotUniverse'
export type { FirstRender } from './client/firstRender'
export type { DigestLike } from './client/writerTags'
export { createIndexedDbOutbox } from './client/outbox'
export type { ActionEntry, IndexedDbOutboxOptions, Outbox, OutboxEntry, StateEntry } from './client/outbox'
export type { BroadcastChannelConstructor, BroadcastChannelLike, LockManagerLike, TabMessage } from './client/tabs'
export type { ConnectionStatus, EventSourceConstructor, EventSourceLike, Timers } from './client/connection'
export { isZunoError, ZunoError } from './errors'
export { newClientId } from './id'
export { validateState } from './schema'
export type { Schemas, StatesOf } from './schema'
export { defineZuno } from './app'
export type {
  ActionsOfApp,
  KeysOfPattern,
  ParamNamesOfPattern,
  ParamsOfPattern,
  StateOfSpec,
  StatesOfApp,
  StatesOfSpecs,
  StoreRule,
  StoreSpec,
  ZunoApp,
} from './app'
export { applyPatch, MAX_PATCH_OPS, PatchError } from './patch'
export type { IdPaths, Patch, PatchOp, Path, PathSegment } from './patch'
export { refuseAction } from './action'
export type { ActionArgs, ActionContext, ActionSpec, ServerAction, Transaction } from './action'
export {
  ACTION_NAME_PATTERN,
  CLIENT_ID_PATTERN,
  DEFAULT_LIMITS,
  DEFAULT_PREFIX,
  ERROR_STATUS,
  formatEventId,
  MAX_STORES_PER_STREAM,
  parseEventId,
  PATHS,
  PRESENCE_LIMITS,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  SSE_EVENTS,
  STORE_KEY_PATTERN,
  STREAM_ID_PATTERN,
  TAB_KEY_PATTERN,
} from './protocol'
export type {
  ActionAccepted,
  ActionRequest,
  CommitEvent,
  PatchRequest,
  StoreChange,
  ErrorBody,
  ErrorCode,
  SchemaIssue,
  EventId,
  HelloMessage,
  PresenceAccepted,
  PresenceBroadcast,
  PresenceMessage,
  PresenceOp,
  PresenceRefusal,
  PresenceRequest,
  RevokedMessage,
  SnapshotMessage,
  SubscribeAccepted,
  SubscribeRequest,
  StateEvent,
  StateResponse,
  StoreState,
  SyncAccepted,
  SyncConflict,
  SyncRequest,
} from './protocol'
