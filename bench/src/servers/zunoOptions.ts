import type { SyncServerOptions } from 'zuno/server'

/**
 * The sync server as a benchmark needs it: the defaults, except the guards a load generator on
 * one address would trip by design (50 proposals a second and 16 streams per address, 10,000
 * streams in all).
 */
export const BENCH_SERVER_OPTIONS: SyncServerOptions = {
  maxProposalsPerSecond: 1_000_000_000,
  maxStreams: 100_000,
  maxStreamsPerPrincipal: 100_000,
}
