/**
 * Patches on the client's side: what a proposal sends instead of its whole state, and the states
 * that events and answers say by patches, rebuilt on what the replica holds.
 */
import { applyPatch, diff, jsonLongerThan, type Patch, PatchError } from '../patch'
import type { StoreState } from '../protocol'
import type { ReplicaStore } from './pendingQueue'

/**
 * The patch to propose instead of `state`, when it is shorter: from the confirmed state the
 * proposal is based on. Structural sharing keeps it cheap (see `diff`).
 */
export function proposalPatch(replica: ReplicaStore, state: unknown): Patch | undefined {
  const patch = diff(replica.confirmed.state, state, replica.ids)
  if (patch === undefined) return undefined
  let patchJson: string
  try {
    patchJson = JSON.stringify(patch)
  } catch {
    // Not JSON (a BigInt, say): the whole state goes, and is refused as such.
    return undefined
  }
  return jsonLongerThan(state, patchJson.length) ? patch : undefined
}

/**
 * The state a change of the stream names: its own, or its patch applied to the version before it.
 * `undefined` when the replica does not hold that version, or the patch does not apply to it: the
 * replica then starts over from a snapshot.
 */
export function stateOfChange(replica: ReplicaStore, change: { version: number; state?: unknown; patch?: Patch; deleted?: true }): { state: unknown } | undefined {
  if (change.deleted) return { state: replica.initial }
  if (change.patch === undefined) return { state: change.state }
  if (replica.confirmed.version !== change.version - 1) return undefined
  return applied(replica.confirmed, [change.patch])
}

/**
 * The state an answer names at `version`: its own, or its patches (one per version up to
 * `version`) applied to what the replica holds, from the first it has not. `undefined` when the
 * replica holds a version before them all, or they do not apply.
 */
export function stateOfAnswer(replica: ReplicaStore, version: number, body: { state?: unknown; patches?: Patch[] }): { state: unknown } | undefined {
  const { patches } = body
  if (patches === undefined) return { state: body.state }
  const { confirmed } = replica
  const first = version - patches.length
  if (confirmed.version < first || confirmed.version > version) return undefined
  return applied(confirmed, patches.slice(confirmed.version - first))
}

function applied(from: StoreState, patches: readonly Patch[]): { state: unknown } | undefined {
  let state = from.state
  try {
    for (const patch of patches) state = applyPatch(state, patch)
  } catch (error) {
    if (error instanceof PatchError) return undefined
    throw error
  }
  return { state }
}
