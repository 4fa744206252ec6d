/**
 * `zuno/server`: the authoritative side. Framework adapters build on `SyncServer`; apps use
 * `createUniverse` and an adapter.
 */
export { AuthoritativeUniverse, createUniverse } from './authoritativeUniverse'
export type { ServedUniverse, UniverseOptions } from './authoritativeUniverse'
export { EventLog } from './log'
export type { LogEntry } from './log'
export { createMemoryStorage } from './memoryStorage'
export type { MemoryStorageOptions } from './memoryStorage'
export type { CommitOutcome, CommittedEvent, Proposal, Storage, StorageImage } from './storage'
export type { SseSink, Subscription } from './hub'
export { HEARTBEAT_FRAME, SSE_HEADERS } from './sse'
export { errorResponse, JSON_HEADERS, splitTarget, SyncServer, tooLarge } from './syncServer'
export type { SyncServerOptions, ZunoRequest, ZunoResponse } from './syncServer'
export { createFetchHandler, readRequestBody, toResponse } from './fetchHandler'
export type { FetchHandler, FetchHandlerOptions } from './fetchHandler'
export { readNodeBody } from './nodeBody'
export type { NodeBodyStream } from './nodeBody'
export { streamToNodeResponse } from './nodeStream'
export type { NodeStreamResponse } from './nodeStream'
export { isJsonContentType, parseProposalText, validateProposal } from './validate'
export type { Authenticate, AuthRequest, Authorize, Principal } from './auth'
