/**
 * The Lua scripts of the Redis storage: one per step, each all or nothing. Redis does not roll a
 * script back when a command in it fails, so every script reads (and so type-checks) each key it
 * needs before its first write, and its first write is the one that may still be refused (XADD).
 *
 * Keys of a namespace `{ns}` (the braces keep them in one cluster slot):
 * - `{ns}:epoch`  hash: `id` (the epoch), `base` (its first seq is base + 1), `format` (2)
 * - `{ns}:seq`    the seq of the last event
 * - `{ns}:log`    the Stream: entry `0-<seq>` with `k` store key, `v` version, `s` state JSON,
 *                 `w` writer tag, `o` opId (never the secret client id). An action's commit of
 *                 several stores is one entry with `w`, `o`, `n` (how many stores) and `k1 v1 s1`,
 *                 `k2 v2 s2`, … in the order written. Those entries need a version that has actions:
 *                 an older one finds no `k` and stops following (unhealthy) instead of missing a change.
 *                 `p` when the writer knew what changed: the patch JSON (one store), or an array of
 *                 them, `null` where unknown (several stores; one field, as `p1 … pn` of a thousand
 *                 stores would pass Lua's `unpack` bound). Older readers ignore it.
 * - `{ns}:stores` set of store keys; `{ns}:s:<storeKey>` hash: `v` version, `s` state JSON (`''`
 *                 for a deleted store: no JSON is empty), `d` the version of its latest deletion
 * - `{ns}:c:<clientKey>` hash: `m` mark, `t` seenAt, `d:<opId>` digest and `r:<opId>` answer of
 *                 the last ops (`a<version>:<seq>` accepted, `a0:<seq>` an action that wrote
 *                 nothing, `x<json>` refused); expires after the client lifetime
 * - `{ns}:count`  hash: `n` how many stores exist (written and not deleted), exact as of seq `at`.
 *                 Every commit that finds `at` equal to `seq` moves both on; one that does not (a
 *                 write by a release before the counter, which left it behind, or no counter yet)
 *                 leaves it, and the next LOAD counts the stores again (once, O(stores)).
 */

/** The data format this version writes and reads. */
export const FORMAT = 2

/**
 * Helpers shared by the scripts. `ensure` returns the current epoch after moving to a new one if
 * the history lost acknowledged data: the epoch key gone (a restart without persistence, a
 * FLUSHDB), `seq` gone or behind the Stream, or `seq` behind what the caller already saw in its
 * epoch (`floor`: a failover to a lagging replica). The new epoch starts from what is left. The
 * cheap check sees entries past `seq`; `strict` also the Stream's last generated id (XINFO).
 */
const ENSURE = `
local FORMAT = ${FORMAT}
local function streamTop(log)
  if redis.call('EXISTS', log) == 0 then return 0 end
  local info = redis.call('XINFO', 'STREAM', log)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return tonumber(string.match(info[i + 1], '%-(%d+)$')) or 0 end
  end
  return 0
end
local function newEpoch(epochKey, seqKey, log, candidate)
  local seq = tonumber(redis.call('GET', seqKey) or '0') or 0
  local top = streamTop(log)
  if top > seq then seq = top end
  redis.call('SET', seqKey, seq)
  redis.call('DEL', epochKey)
  redis.call('HSET', epochKey, 'id', candidate, 'base', seq, 'format', FORMAT)
  return seq
end
local function ensure(epochKey, seqKey, log, candidate, expected, floor, strict)
  if redis.call('TYPE', epochKey).ok ~= 'hash' then
    -- none: a new namespace, or one that lost its data; string: format 1, migrated to a new epoch
    local seq = newEpoch(epochKey, seqKey, log, candidate)
    return candidate, seq, seq, FORMAT
  end
  local e = redis.call('HMGET', epochKey, 'id', 'base', 'format')
  local format = tonumber(e[3] or '0') or 0
  if format > FORMAT then return e[1], 0, -1, format end
  local seq = tonumber(redis.call('GET', seqKey) or '')
  local lost = not e[1] or not seq
  if not lost then
    lost = (e[1] == expected and seq < floor) or #redis.call('XREVRANGE', log, '+', '(0-' .. seq, 'COUNT', 1) > 0
    -- strict (after an XADD was refused): also entries deleted past seq, which the check above cannot see
    if not lost and strict then lost = streamTop(log) > seq end
  end
  if lost then
    local s = newEpoch(epochKey, seqKey, log, candidate)
    return candidate, s, s, FORMAT
  end
  return e[1], tonumber(e[2] or '0') or 0, seq, format
end
`

/**
 * Decides an op against its client's record, as \`ClientLedger.decide\` does: nil when it is the client's next
 * op, else the reply. A kept acceptance is answered with the state of its event while the Stream
 * keeps it (checked to be that op's), else as \`processed\` with a seq to catch up to (the instance
 * answers with the store once it has followed the Stream that far). \`decide\` is a plain write's,
 * \`decideAction\` an action's: it takes the store the answer names from the event itself.
 */
const DECIDE = `
local function kept(clientKey, opId, digest, seq)
  local mark = tonumber(redis.call('HGET', clientKey, 'm') or '0')
  local n = tonumber(opId)
  if n <= mark then
    local found = redis.call('HMGET', clientKey, 'd:' .. opId, 'r:' .. opId)
    if not found[1] or not found[2] then return {'processed', tostring(seq)} end
    if found[1] ~= digest then return {'reused'} end
    return {'kept', found[2]}
  end
  if n ~= mark + 1 then return {'unknown_client'} end
  return nil
end
local function entryAt(log, seq)
  local entry = redis.call('XRANGE', log, '0-' .. seq, '0-' .. seq)[1]
  if not entry then return nil end
  local f = {}
  for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
  return f
end
local function decide(clientKey, log, opId, digest, storeKey, writer, seq)
  local found = kept(clientKey, opId, digest, seq)
  if not found or found[1] ~= 'kept' then return found end
  local answer = found[2]
  if string.sub(answer, 1, 1) == 'x' then return {'answered', answer} end
  local version, at = string.match(answer, '^a(%d+):(%d+)$')
  local f = entryAt(log, at)
  if f and f.k == storeKey and f.v == version and f.w == writer and f.o == opId then return {'answered', answer, f.s} end
  return {'processed', at}
end
local function decideAction(clientKey, log, opId, digest, writer, seq)
  local found = kept(clientKey, opId, digest, seq)
  if not found or found[1] ~= 'kept' then return found end
  local answer = found[2]
  if string.sub(answer, 1, 1) == 'x' then return {'answered', answer} end
  local version, at = string.match(answer, '^a(%d+):(%d+)$')
  -- Version 0: the action wrote nothing, and no event holds it.
  if version == '0' then return {'answered', answer} end
  local f = entryAt(log, at)
  if f and f.w == writer and f.o == opId then
    -- The answer names the first store written: the only one of a one-store event, else change 1.
    if f.k and f.v == version then return {'answered', answer, f.s, f.k} end
    if f.k1 and f.v1 == version then return {'answered', answer, f.s1, f.k1} end
  end
  return {'processed', at}
end
-- The store count, when it is exact as of \`seq\` (else nil: LOAD counts again).
local function countAt(countKey, seq)
  local c = redis.call('HMGET', countKey, 'n', 'at')
  if c[1] and tonumber(c[2]) == tonumber(seq) then return tonumber(c[1]) end
  return nil
end
-- Whether a store hash holds a state (written and not deleted): a deletion keeps '' (no JSON is empty).
local function exists(storeHash)
  return redis.call('HSTRLEN', storeHash, 's') > 0
end
local function record(clientKey, opId, digest, answer, window, lifetime, now)
  redis.call('HSET', clientKey, 'm', opId, 't', now, 'd:' .. opId, digest, 'r:' .. opId, answer)
  local old = tonumber(opId) - tonumber(window)
  if old >= 1 then redis.call('HDEL', clientKey, 'd:' .. old, 'r:' .. old) end
  redis.call('PEXPIRE', clientKey, lifetime)
end
`

/**
 * COMMIT. KEYS: epoch, seq, log, store, stores, client, count. ARGV: epoch, floor, storeKey, baseVersion,
 * stateJson, writer, opId, digest, window, lifetimeMs, now, retention, patchJson ('' when unknown).
 * Replies: {'accepted', version, seq, existed ('1' or '0')} | {'conflict', version, stateJson|nil, deletedAt|nil} | {'epoch_changed', epoch}
 * | {'lost'} | a decision of DECIDE.
 */
export const COMMIT = `${DECIDE}
local id = redis.call('HGET', KEYS[1], 'id')
if not id then return {'lost'} end
if id ~= ARGV[1] then return {'epoch_changed', id} end
local seq = tonumber(redis.call('GET', KEYS[2]) or '')
if not seq or seq < tonumber(ARGV[2]) then return {'lost'} end
redis.call('SISMEMBER', KEYS[5], ARGV[3])
local count = countAt(KEYS[7], seq)
local decided = decide(KEYS[6], KEYS[3], ARGV[7], ARGV[8], ARGV[3], ARGV[6], seq)
if decided then return decided end
local version = tonumber(redis.call('HGET', KEYS[4], 'v') or '0')
if version ~= tonumber(ARGV[4]) then
  local h = redis.call('HMGET', KEYS[4], 's', 'd')
  return {'conflict', tostring(version), h[1], h[2]}
end
local nextVersion = version + 1
local nextSeq = seq + 1
-- The first write: refused when seq is behind the Stream (the history was rolled back), and then nothing was written.
local existed = exists(KEYS[4]) and '1' or '0'
local entry = {'k', ARGV[3], 'v', nextVersion, 's', ARGV[5], 'w', ARGV[6], 'o', ARGV[7], 'e', existed}
if ARGV[13] ~= '' then entry[13], entry[14] = 'p', ARGV[13] end
local added = redis.pcall('XADD', KEYS[3], 'MAXLEN', '~', ARGV[12], '0-' .. nextSeq, unpack(entry))
if type(added) == 'table' and added.err then return {'lost'} end
redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[4], 'v', nextVersion, 's', ARGV[5])
if ARGV[5] == '' then redis.call('HSET', KEYS[4], 'd', nextVersion) end
redis.call('SADD', KEYS[5], ARGV[3])
if count then
  if existed == '1' and ARGV[5] == '' then count = count - 1 elseif existed == '0' and ARGV[5] ~= '' then count = count + 1 end
  redis.call('HSET', KEYS[7], 'n', count, 'at', nextSeq)
end
record(KEYS[6], ARGV[7], ARGV[8], 'a' .. nextVersion .. ':' .. nextSeq, ARGV[9], ARGV[10], ARGV[11])
return {'accepted', tostring(nextVersion), tostring(nextSeq), existed}
`

/**
 * REFUSE. KEYS: epoch, seq, log, client. ARGV: epoch, opId, digest, storeKey, writer, answerJson,
 * window, lifetimeMs, now, resentAfterMs (-1 when not a resend). Replies like COMMIT, with {'answered', 'x' .. answerJson} when recorded.
 */
export const REFUSE = `${DECIDE}
local id = redis.call('HGET', KEYS[1], 'id')
if not id then return {'lost'} end
if id ~= ARGV[1] then return {'epoch_changed', id} end
local decided = decide(KEYS[4], KEYS[3], ARGV[2], ARGV[3], ARGV[4], ARGV[5], redis.call('GET', KEYS[2]) or '0')
if decided then return decided end
-- As in ACTION: a resent first op of a client with no record, whose earlier attempt may have run and been forgotten.
local resent = tonumber(ARGV[10] or '-1')
if resent >= 0 and resent * 2 >= tonumber(ARGV[8]) and redis.call('EXISTS', KEYS[4]) == 0 then return {'unknown_client'} end
record(KEYS[4], ARGV[2], ARGV[3], 'x' .. ARGV[6], ARGV[7], ARGV[8], ARGV[9])
return {'answered', 'x' .. ARGV[6]}
`

/**
 * ACTION: an action's commit, all or nothing. Every written store must be at its base version and
 * every read one at the version read; then the writes land as ONE Stream entry (one seq), a
 * one-store entry exactly as COMMIT writes it when the action wrote one store. With no write the
 * op is recorded as `a0:<seq>` and nothing else changes. The store hashes are in KEYS (a variable
 * number of them, all in the namespace's slot); Lua's `unpack` bounds an action to about a
 * thousand written stores.
 * KEYS: epoch, seq, log, stores, client, count, then each written store's hash, then each read one's.
 * ARGV: epoch, floor, writer, opId, digest, window, lifetimeMs, now, retention, number of writes,
 * resentAfterMs (-1 when the op is not a resend), the entry's `p` ('' for none),
 * then storeKey, baseVersion, stateJson per write, then storeKey, version per read.
 * Replies: {'accepted', seq, existed (a digit per write, as the entry's \`e\`)} | {'unchanged', seq} | {'conflict', version, stateJson|false, storeKey} of the
 * first store that moved | {'epoch_changed', epoch} | {'lost'} | a decision of DECIDE's
 * `decideAction` (an accepted answer carries the first store's state and key).
 */
export const ACTION = `${DECIDE}
local id = redis.call('HGET', KEYS[1], 'id')
if not id then return {'lost'} end
if id ~= ARGV[1] then return {'epoch_changed', id} end
local seq = tonumber(redis.call('GET', KEYS[2]) or '')
if not seq or seq < tonumber(ARGV[2]) then return {'lost'} end
redis.call('SISMEMBER', KEYS[4], '')
local count = countAt(KEYS[6], seq)
local decided = decideAction(KEYS[5], KEYS[3], ARGV[4], ARGV[5], ARGV[3], seq)
if decided then return decided end
-- A resent first op of a client with no record, whose earlier attempt's record could have expired: it may have run.
local resent = tonumber(ARGV[11])
if resent >= 0 and resent * 2 >= tonumber(ARGV[7]) and redis.call('EXISTS', KEYS[5]) == 0 then return {'unknown_client'} end
local writes = tonumber(ARGV[10])
local reads = #KEYS - 6 - writes
local function writeArg(i, field) return ARGV[12 + 3 * (i - 1) + field] end
local function readArg(i, field) return ARGV[12 + 3 * writes + 2 * (i - 1) + field] end
-- Every check before the first write: a store that moved since the action ran means it must run again.
for i = 1, writes + reads do
  local expected = i <= writes and writeArg(i, 2) or readArg(i - writes, 2)
  local version = tonumber(redis.call('HGET', KEYS[6 + i], 'v') or '0')
  if version ~= tonumber(expected) then
    local key = i <= writes and writeArg(i, 1) or readArg(i - writes, 1)
    return {'conflict', tostring(version), redis.call('HGET', KEYS[6 + i], 's') or false, key}
  end
end
if writes == 0 then
  record(KEYS[5], ARGV[4], ARGV[5], 'a0:' .. seq, ARGV[6], ARGV[7], ARGV[8])
  return {'unchanged', tostring(seq)}
end
local nextSeq = seq + 1
local existed = {}
for i = 1, writes do
  local was = exists(KEYS[6 + i])
  existed[i] = was and '1' or '0'
  if count then
    if was and writeArg(i, 3) == '' then count = count - 1 elseif not was and writeArg(i, 3) ~= '' then count = count + 1 end
  end
end
existed = table.concat(existed)
local entry
if writes == 1 then
  entry = {'k', writeArg(1, 1), 'v', tonumber(writeArg(1, 2)) + 1, 's', writeArg(1, 3), 'w', ARGV[3], 'o', ARGV[4]}
else
  entry = {'w', ARGV[3], 'o', ARGV[4], 'n', writes}
  for i = 1, writes do
    local n = #entry
    entry[n + 1] = 'k' .. i
    entry[n + 2] = writeArg(i, 1)
    entry[n + 3] = 'v' .. i
    entry[n + 4] = tonumber(writeArg(i, 2)) + 1
    entry[n + 5] = 's' .. i
    entry[n + 6] = writeArg(i, 3)
  end
end
local n = #entry
entry[n + 1], entry[n + 2] = 'e', existed
if ARGV[12] ~= '' then entry[n + 3], entry[n + 4] = 'p', ARGV[12] end
-- The first write: refused when seq is behind the Stream (the history was rolled back), and then nothing was written.
local added = redis.pcall('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '0-' .. nextSeq, unpack(entry))
if type(added) == 'table' and added.err then return {'lost'} end
redis.call('INCR', KEYS[2])
for i = 1, writes do
  redis.call('HSET', KEYS[6 + i], 'v', tonumber(writeArg(i, 2)) + 1, 's', writeArg(i, 3))
  if writeArg(i, 3) == '' then redis.call('HSET', KEYS[6 + i], 'd', tonumber(writeArg(i, 2)) + 1) end
  redis.call('SADD', KEYS[4], writeArg(i, 1))
end
if count then redis.call('HSET', KEYS[6], 'n', count, 'at', nextSeq) end
record(KEYS[5], ARGV[4], ARGV[5], 'a' .. (tonumber(writeArg(1, 2)) + 1) .. ':' .. nextSeq, ARGV[6], ARGV[7], ARGV[8])
return {'accepted', tostring(nextSeq), existed}
`

/**
 * RECONCILE: the epoch as it stands, moved to a new one if history was lost. A compare-and-set:
 * of instances that saw the same loss, the first moves to a new epoch and the others find it.
 * KEYS: epoch, seq, log. ARGV: candidate, expected, floor, strict. Reply: {epoch, base, seq, format}.
 */
export const RECONCILE = `${ENSURE}
local id, base, seq, format = ensure(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1')
return {id, tostring(base), tostring(seq), tostring(format)}
`

/**
 * The store count as of `seq`, with '1' when it was counted now: the counter when it is exact as of
 * `seq`, else SSCAN of the store set and HSTRLEN of each store's state, O(stores) in the calling
 * script, which then leaves the counter exact as of `seq`.
 */
const COUNTING = `
local function countStores(storesKey, countKey, prefix, seq)
  local c = redis.call('HMGET', countKey, 'n', 'at')
  if c[1] and tonumber(c[2]) == seq then return tonumber(c[1]), '0' end
  local count, cursor = 0, '0'
  repeat
    local page = redis.call('SSCAN', storesKey, cursor, 'COUNT', 1000)
    cursor = page[1]
    for _, key in ipairs(page[2]) do
      if redis.call('HSTRLEN', prefix .. key, 's') > 0 then count = count + 1 end
    end
  until cursor == '0'
  -- SSCAN may return a key twice (a rehash meanwhile): none can happen within one script.
  redis.call('DEL', countKey)
  redis.call('HSET', countKey, 'n', count, 'at', seq)
  return count, '1'
end
`

/**
 * LOAD: RECONCILE, then seq, the store count and recent events as of that one moment; no store
 * (they are read when needed, with READ). A namespace without an exact count (written by a release
 * before it, or behind since such a release wrote) is counted here, once: SSCAN of the store set
 * and HSTRLEN of each store's state, O(stores) in this one script, which blocks Redis meanwhile
 * (about as long as a start of that release, which read every store, without their states).
 * KEYS: epoch, seq, log, stores, count. ARGV: candidate, expected, floor, recent, store key prefix, recent bytes.
 * Reply: {epoch, base, seq, format, storeCount, entries (newest first), counted ('1' when it counted now)}.
 */
export const LOAD = `${ENSURE}${COUNTING}
local id, base, seq, format = ensure(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], tonumber(ARGV[3]), false)
if seq < 0 then return {id, '0', '-1', tostring(format), '0', {}, '0'} end
local count, counted = countStores(KEYS[4], KEYS[5], ARGV[5], seq)
-- The newest events, at most ARGV[4] of them and ARGV[6] bytes, read in chunks so the bound holds in Redis too.
local recent = {}
local want, budget, bytes = tonumber(ARGV[4]), tonumber(ARGV[6]), 0
local from = '0-' .. seq
while #recent < want and seq > base do
  local chunk = redis.call('XREVRANGE', KEYS[3], from, '(0-' .. base, 'COUNT', math.min(100, want - #recent))
  if #chunk == 0 then break end
  for _, entry in ipairs(chunk) do
    for i = 2, #entry[2], 2 do bytes = bytes + #entry[2][i] end
    if bytes > budget then
      want = 0
      break
    end
    recent[#recent + 1] = entry
  end
  from = '(' .. chunk[#chunk][1]
end
return {id, tostring(base), tostring(seq), tostring(format), tostring(count), recent, counted}
`

/**
 * The check of READ and SCAN: nil when the epoch is still `expected` ('' for any) and seq not
 * behind `floor`, else the reply ({'epoch_changed', epoch} or {'lost'}). Then the fields of a store,
 * appended to `out` when it was ever written: key, version, state JSON ('' deleted), deletedAt or ''.
 */
const READING = `
local function current(epochKey, seqKey, expected, floor)
  local id = redis.call('HGET', epochKey, 'id')
  if not id then return nil, {'lost'} end
  if expected ~= '' and id ~= expected then return nil, {'epoch_changed', id} end
  local seq = tonumber(redis.call('GET', seqKey) or '')
  if not seq or seq < tonumber(floor) then return nil, {'lost'} end
  return seq, nil, id
end
local function store(out, prefix, key)
  local h = redis.call('HMGET', prefix .. key, 'v', 's', 'd')
  if h[1] and h[2] then
    out[#out + 1] = key
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
    out[#out + 1] = h[3] or ''
  end
end
`

/**
 * READ: the stores named as of one moment, with its seq; with no key named and ARGV[4] = '1', every
 * store (one script over the whole set: the fallback of a read of every store, see SCAN).
 * KEYS: epoch, seq, stores. ARGV: expected epoch, floor, store key prefix, every ('1' or '0'), then the keys.
 * Reply: {'ok', seq, {storeKey, version, stateJson, deletedAt or '', …}, epoch} | {'epoch_changed', epoch} | {'lost'}.
 */
export const READ = `${READING}
local seq, refused, id = current(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
if refused then return refused end
local out = {}
if ARGV[4] == '1' then
  for _, key in ipairs(redis.call('SMEMBERS', KEYS[3])) do store(out, ARGV[3], key) end
else
  for i = 5, #ARGV do store(out, ARGV[3], ARGV[i]) end
end
return {'ok', tostring(seq), out, id}
`

/**
 * SCAN: one page of every store (SSCAN of the set from a cursor) as of one moment, with its seq.
 * Pages are read at different seqs; the storage brings each on to the last page's seq from the Stream.
 * KEYS: epoch, seq, stores. ARGV: expected epoch, floor, store key prefix, cursor, page size.
 * Reply: {'ok', seq, next cursor ('0' at the end), {storeKey, version, stateJson, deletedAt or '', …}, epoch} | like READ.
 */
export const SCAN = `${READING}
local seq, refused, id = current(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
if refused then return refused end
local page = redis.call('SSCAN', KEYS[3], ARGV[4], 'COUNT', tonumber(ARGV[5]))
local out = {}
for _, key in ipairs(page[2]) do store(out, ARGV[3], key) end
return {'ok', tostring(seq), page[1], out, id}
`

/**
 * COUNT: how many stores exist as of one moment, with its seq and epoch: the counter when it is
 * exact, else counted as LOAD counts (once; the commit scripts then keep it exact). Asked by a
 * universe that applied changes written by an older release, which do not say whether their store
 * existed.
 * KEYS: epoch, seq, stores, count. ARGV: expected epoch, floor, store key prefix.
 * Reply: {'ok', seq, count, epoch} | {'epoch_changed', epoch} | {'lost'}.
 */
export const COUNT = `${READING}${COUNTING}
local seq, refused, id = current(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
if refused then return refused end
local count = countStores(KEYS[3], KEYS[4], ARGV[3], seq)
return {'ok', tostring(seq), tostring(count), id}
`
