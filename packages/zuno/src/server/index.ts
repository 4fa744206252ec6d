/**
 * `zuno/server`: the authoritative side. Framework adapters build on `SyncServer`; apps use
 * `createUniverse` and an adapter.
 *
 * @module zuno/server
 */
export { AuthoritativeUniverse, createUniverse } from './authoritativeUniverse'
export type { ActionCaller, ActionResult, Proposer, ProposalResult, ServedUniverse, UniverseOptions } from './authoritativeUniverse'
export { createLocalBus } from './signals'
export type { InstanceSignal } from './signals'
export type { PresenceOptions, PresenceOutcome, PresenceSignal } from './presence'
export { EventLog } from './log'
export type { LogEntry } from './log'
export { createMemoryStorage } from './memoryStorage'
export type { MemoryStorageOptions } from './memoryStorage'
export type {
  ActionCommitRequest,
  CommitOutcome,
  CommitRequest,
  CommittedChange,
  CommittedEvent,
  InstanceBus,
  OpAnswer,
  OpIdentity,
  RefusalAnswer,
  ReadCheck,
  RefusalRequest,
  Storage,
  StorageCount,
  StorageHealth,
  StorageImage,
  StorageRead,
  Write,
} from './storage'
// What a storage of its own (zuno-redis) shares with the built-in ones: the defaults and record keys.
export { CLIENT_DEFAULTS, clientKey } from './clientLedger'
export type { ClientRecordOptions } from './clientLedger'
export { notifyEach } from './notify'
// What a storage stamps on each event: the writer's public tag (browsers compute their own with WebCrypto).
export { writerTag } from '../writerTag'
export type { SseSink, Subscription } from './hub'
export { HEARTBEAT_FRAME, SSE_HEADERS } from './sse'
export { errorResponse, JSON_HEADERS, splitTarget, SyncServer, tooLarge } from './syncServer'
export type { SyncServerOptions, ZunoRequest, ZunoResponse } from './syncServer'
export { createFetchHandler, readRequestBody, toResponse } from './fetchHandler'
export type { FetchHandler, FetchHandlerOptions, PeerSource } from './fetchHandler'
export { createNodeHandler } from './nodeHandler'
export type { NodeHandler, NodeHandlerOptions } from './nodeHandler'
export { readNodeBody } from './nodeBody'
export type { NodeBodyStream } from './nodeBody'
export { streamToNodeResponse } from './nodeStream'
export type { NodeStreamResponse } from './nodeStream'
export { isActionRequest, isJsonContentType, parseProposalText, validateProposal } from './validate'
export type { Proposal } from './validate'
export type { Authenticate, AuthorizeAction, AuthRequest, Authorize, Principal } from './auth'
