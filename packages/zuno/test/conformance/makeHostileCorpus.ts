/**
 * Writes hostile-corpus.json: requests every adapter must refuse with a 4xx JSON error (with the
 * given code), changing nothing; or, for `POST /presence`, where skipping a room is the defined
 * answer, a 200 that names exactly the rooms refused, each with its code. Run `node --import tsx makeHostileCorpus.ts` after editing; the
 * JSON is checked in, so the corpus is reviewable and stable.
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { CLIENT_PLACEHOLDER, EPOCH_PLACEHOLDER, STREAM_PLACEHOLDER } from './placeholders'

export interface HostileCase {
  name: string
  method: string
  /** Below the prefix, with any query. */
  target: string
  headers: Record<string, string>
  body: string | null
  status: number
  /** The code of the JSON error; absent for a 200. */
  error?: string
  /** For a 200 to `POST /presence`: the rooms refused, each with its code (none when absent). */
  refused?: Record<string, string>
}

const JSON_TYPE = { 'content-type': 'application/json' }
const cases: HostileCase[] = []
const add = (c: Omit<HostileCase, 'headers'> & { headers?: Record<string, string> }) =>
  cases.push({ headers: JSON_TYPE, ...c })


/** A well-formed proposal for a declared store; cases override or remove fields. */
const base = { storeKey: 'counter', baseVersion: 0, epoch: EPOCH_PLACEHOLDER, state: 1, clientId: CLIENT_PLACEHOLDER, opId: 1 }
const proposal = (fields: Record<string, unknown>, drop: string[] = []) => {
  const body: Record<string, unknown> = { ...base, ...fields }
  for (const key of drop) delete body[key]
  return JSON.stringify(body)
}

// Malformed JSON.
for (const [name, body] of [
  ['empty', ''],
  ['whitespace', '   \n\t '],
  ['open brace', '{'],
  ['close brace', '}'],
  ['truncated after key', '{"storeKey":'],
  ['truncated string', '{"storeKey":"coun'],
  ['trailing comma', '{"storeKey":"counter",}'],
  ['trailing garbage', `${proposal({})}x`],
  ['two documents', `${proposal({})}${proposal({})}`],
  ['single quotes', "{'storeKey':'counter'}"],
  ['unquoted keys', '{storeKey:"counter"}'],
  ['NaN', '{"storeKey":"counter","baseVersion":NaN,"state":1}'],
  ['Infinity', '{"storeKey":"counter","baseVersion":Infinity,"state":1}'],
  ['undefined literal', '{"state":undefined}'],
  ['line comment', '// hi\n{}'],
  ['block comment', '/* hi */ {}'],
  ['raw control character in string', '{"storeKey":"co\u0001unter"}'],
  ['bad escape', '{"storeKey":"\\x41"}'],
  ['short unicode escape', '{"storeKey":"\\u12"}'],
  ['hex number', '{"baseVersion":0x10}'],
  ['leading zero number', '{"baseVersion":01}'],
  ['plus sign number', '{"baseVersion":+1}'],
  ['bare word', 'counter'],
  ['null byte', '\u0000'],
  ['only quotes', '""""'],
  ['array of open brackets', '[[['],
  ['javascript', 'alert(1)'],
  ['html', '<script>alert(1)</script>'],
  ['xml', '<?xml version="1.0"?><a/>'],
  ['form encoding', 'storeKey=counter&baseVersion=0&state=1'],
  ['yaml', 'storeKey: counter\nbaseVersion: 0'],
  ['missing colon', '{"storeKey" "counter"}'],
  ['missing value', '{"storeKey":}'],
  ['nested truncation', '{"state":{"a":[1,2,{"b":'],
  ['unterminated array', '[1,2,3'],
  ['lone minus', '-'],
  ['exponent without digits', '{"baseVersion":1e}'],
  ['true prefix', 'tru'],
  ['smart quotes', '{“storeKey”:“counter”}'],
] as const) {
  add({ name: `malformed JSON: ${name}`, method: 'POST', target: '/sync', body, status: 400, error: 'bad_json' })
}

// JSON, but not an object.
for (const [name, body] of [
  ['array', '[]'],
  ['array of proposals', `[${proposal({})}]`],
  ['string', '"counter"'],
  ['number', '42'],
  ['negative number', '-1'],
  ['float', '3.14'],
  ['true', 'true'],
  ['false', 'false'],
  ['null', 'null'],
  ['nested array', '[[1]]'],
  ['empty string', '""'],
  ['large number', '1e309'],
] as const) {
  add({ name: `not an object: ${name}`, method: 'POST', target: '/sync', body, status: 400, error: 'invalid_body' })
}

// Store keys.
const badKeys: Array<[string, unknown]> = [
  ['empty', ''],
  ['space', 'a b'],
  ['leading dash', '-counter'],
  ['leading dot', '.counter'],
  ['leading underscore', '_counter'],
  ['leading colon', ':counter'],
  ['slash', 'a/b'],
  ['backslash', 'a\\b'],
  ['path traversal', '../etc/passwd'],
  ['encoded traversal', '%2e%2e%2fsecret'],
  ['null byte', 'counter\u0000'],
  ['newline', 'counter\nx'],
  ['carriage return', 'counter\r\nSet-Cookie: x=1'],
  ['tab', 'counter\t'],
  ['unicode letters', 'zähler'],
  ['emoji', 'count🙂'],
  ['right-to-left override', 'abc\u202Edef'],
  ['zero-width space', 'coun\u200Bter'],
  ['129 characters', 'a'.repeat(129)],
  ['10,000 characters', 'a'.repeat(10_000)],
  ['__proto__', '__proto__'],
  ['angle brackets', '<script>'],
  ['quote', 'a"b'],
  ['semicolon', 'a;b'],
  ['comma', 'a,b'],
  ['question mark', 'a?b'],
  ['hash', 'a#b'],
  ['percent', 'a%b'],
  ['asterisk', '*'],
  ['SQL injection', "x' OR '1'='1"],
  ['number', 7],
  ['zero', 0],
  ['true', true],
  ['null', null],
  ['array', ['counter']],
  ['object', { key: 'counter' }],
  ['nested object with toString', { toString: 'counter' }],
]
for (const [name, storeKey] of badKeys) {
  add({ name: `store key: ${name}`, method: 'POST', target: '/sync', body: proposal({ storeKey }), status: 400, error: 'invalid_store_key' })
}
add({ name: 'store key: missing', method: 'POST', target: '/sync', body: proposal({}, ['storeKey']), status: 400, error: 'invalid_store_key' })

// Base versions.
const badVersions: Array<[string, unknown]> = [
  ['negative', -1],
  ['negative zero as string', '-0'],
  ['fraction', 0.5],
  ['large fraction', 1.0000001],
  ['string', '0'],
  ['string number', '1'],
  ['null', null],
  ['true', true],
  ['false', false],
  ['array', [0]],
  ['object', { value: 0 }],
  ['2^53', 2 ** 53],
  ['1e300', 1e300],
  ['negative large', -(2 ** 60)],
  ['empty string', ''],
  ['hex string', '0x1'],
]
for (const [name, baseVersion] of badVersions) {
  add({ name: `baseVersion: ${name}`, method: 'POST', target: '/sync', body: proposal({ baseVersion }), status: 400, error: 'invalid_base_version' })
}
add({ name: 'baseVersion: missing', method: 'POST', target: '/sync', body: proposal({}, ['baseVersion']), status: 400, error: 'invalid_base_version' })

// State.
add({ name: 'state: missing', method: 'POST', target: '/sync', body: proposal({}, ['state']), status: 400, error: 'missing_state' })

// Patches (instead of a state).
add({ name: 'patch: beside a state', method: 'POST', target: '/sync', body: proposal({ patch: [] }), status: 400, error: 'invalid_body' })
const badPatches: Array<[string, unknown]> = [
  ['null', null],
  ['object', { op: 'replace' }],
  ['string', '[[["a"],1]]'],
  ['op not an array', [1]],
  ['op empty', [[]]],
  ['op of four', [[['a'], 1, null, 0]]],
  ['path a string (JSON Pointer)', [['/a', 1]]],
  ['step a boolean', [[[true], 1]]],
  ['step null', [[[null], 1]]],
  ['step a negative index', [[[-1], 1]]],
  ['step a fraction', [[[1.5], 1]]],
  ['step an empty object', [[[{}], 1]]],
  ['step an object of two keys', [[[{ id: 1, key: 2 }], 1]]],
  ['step an object with an object id', [[[{ id: { x: 1 } }], 1]]],
  ['insert after an object', [[[{ id: 'a' }], 1, { id: 'b' }]]],
  ['insert at a key', [[['a'], 1, null]]],
  ['insert at the root', [[[], 1, null]]],
  ['1,001 operations', Array.from({ length: 1001 }, () => [['a'], 1])],
]
for (const [name, patch] of badPatches) {
  add({ name: `patch: ${name}`, method: 'POST', target: '/sync', body: proposal({ patch }, ['state']), status: 400, error: 'invalid_patch' })
}

// Client ids and op ids.
const badClients: Array<[string, unknown]> = [
  ['empty', ''],
  ['space', 'a b'],
  ['129 characters', 'c'.repeat(129)],
  ['newline', 'a\nb'],
  ['header injection', 'a\r\nSet-Cookie: x=1'],
  ['unicode', 'klïent'],
  ['slash', 'a/b'],
  ['number', 5],
  ['null', null],
  ['array', ['a']],
  ['object', { id: 'a' }],
  ['true', true],
  ['chosen by the app (protocol v1)', 'device-42'],
  ['a secret one character short', `${'t'.repeat(16)}.${'s'.repeat(21)}`],
  ['no tag', `.${'s'.repeat(22)}`],
]
for (const [name, clientId] of badClients) {
  add({ name: `clientId: ${name}`, method: 'POST', target: '/sync', body: proposal({ clientId }), status: 400, error: 'invalid_client_id' })
}
add({ name: 'clientId: missing', method: 'POST', target: '/sync', body: proposal({}, ['clientId']), status: 400, error: 'invalid_client_id' })
const badOps: Array<[string, unknown]> = [
  ['zero (ops count from 1)', 0],
  ['negative', -1],
  ['fraction', 1.5],
  ['string', '1'],
  ['null', null],
  ['array', [1]],
  ['object', {}],
  ['2^53', 2 ** 53],
  ['true', true],
]
for (const [name, opId] of badOps) {
  add({ name: `opId: ${name}`, method: 'POST', target: '/sync', body: proposal({ opId }), status: 400, error: 'invalid_op_id' })
}
add({ name: 'opId: missing', method: 'POST', target: '/sync', body: proposal({}, ['opId']), status: 400, error: 'invalid_op_id' })

const badEpochs: Array<[string, unknown]> = [
  ['empty', ''],
  ['with a dash', 'ab-1'],
  ['49 characters', 'e'.repeat(49)],
  ['number', 5],
  ['null', null],
]
for (const [name, epoch] of badEpochs) {
  add({ name: `epoch: ${name}`, method: 'POST', target: '/sync', body: proposal({ epoch }), status: 400, error: 'invalid_epoch' })
}
add({ name: 'epoch: missing', method: 'POST', target: '/sync', body: proposal({}, ['epoch']), status: 400, error: 'invalid_epoch' })
add({ name: 'epoch: another one', method: 'POST', target: '/sync', body: proposal({ epoch: 'anotherepoch' }), status: 409, error: 'epoch_changed' })
add({ name: 'opId: skips ahead of an unknown client', method: 'POST', target: '/sync', body: proposal({ opId: 2 }), status: 409, error: 'unknown_client' })
add({
  name: 'protocol: another version named',
  method: 'POST',
  target: '/sync',
  headers: { ...JSON_TYPE, 'zuno-protocol': '1' },
  body: proposal({}),
  status: 400,
  error: 'unsupported_protocol',
})
add({ name: 'protocol: another version on the stream', method: 'GET', target: '/sse?v=3', headers: {}, body: null, status: 400, error: 'unsupported_protocol' })

// Numbers JSON.parse reads as Infinity: JSON cannot say them back.
for (const [name, number] of [['1e400', '1e400'], ['-1e999', '-1e999'], ['310 digits', '9'.repeat(310)]]) {
  add({
    name: `state: ${name}`,
    method: 'POST',
    target: '/sync',
    body: `{"storeKey":"counter","baseVersion":0,"epoch":"${EPOCH_PLACEHOLDER}","clientId":"${CLIENT_PLACEHOLDER}","opId":1,"state":{"n":[${number}]}}`,
    status: 422,
    error: 'invalid_state',
  })
}

// Prototype tricks at the top level: own properties only count.
add({
  name: 'fields hidden under __proto__',
  method: 'POST',
  target: '/sync',
  body: `{"__proto__":${proposal({})}}`,
  status: 400,
  error: 'invalid_store_key',
})
add({
  name: 'fields hidden under constructor.prototype',
  method: 'POST',
  target: '/sync',
  body: `{"constructor":{"prototype":${proposal({})}}}`,
  status: 400,
  error: 'invalid_store_key',
})

// Content types.
for (const contentType of [
  'text/plain',
  'text/json',
  'text/html',
  'application/xml',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json-patch+json',
  'application/vnd.api+json',
  'application/jsonx',
  'application/javascript',
  '*/*',
  'application/*',
  'json',
  'application',
  'application/octet-stream',
]) {
  add({
    name: `content type: ${contentType}`,
    method: 'POST',
    target: '/sync',
    headers: { 'content-type': contentType },
    body: proposal({}),
    status: 415,
    error: 'unsupported_media_type',
  })
}
add({ name: 'content type: missing', method: 'POST', target: '/sync', headers: {}, body: proposal({}), status: 415, error: 'unsupported_media_type' })

// Depth bombs (the suite's limit is 16).
for (const levels of [17, 20, 64, 1_000, 30_000]) {
  add({
    name: `depth: ${levels} nested arrays in state`,
    method: 'POST',
    target: '/sync',
    body: `{"storeKey":"todos","baseVersion":0,"epoch":"${EPOCH_PLACEHOLDER}","clientId":"${CLIENT_PLACEHOLDER}","opId":1,"state":${'['.repeat(levels)}${']'.repeat(levels)}}`,
    status: 400,
    error: 'too_deep',
  })
}
add({
  name: 'depth: 100 nested objects',
  method: 'POST',
  target: '/sync',
  body: `{"storeKey":"todos","baseVersion":0,"epoch":"${EPOCH_PLACEHOLDER}","clientId":"${CLIENT_PLACEHOLDER}","opId":1,"state":${'{"a":'.repeat(100)}1${'}'.repeat(100)}}`,
  status: 400,
  error: 'too_deep',
})
add({ name: 'depth: unbalanced opening brackets only', method: 'POST', target: '/sync', body: '['.repeat(10_000), status: 400, error: 'too_deep' })

// Size (the suite's limit is 64 KiB).
add({ name: 'size: 65 KiB string state', method: 'POST', target: '/sync', body: proposal({ state: 'x'.repeat(65 * 1024) }), status: 413, error: 'payload_too_large' })
add({ name: 'size: 200 KiB of whitespace', method: 'POST', target: '/sync', body: ' '.repeat(200 * 1024), status: 413, error: 'payload_too_large' })
add({ name: 'size: many small keys', method: 'POST', target: '/sync', body: proposal({ state: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i])) }), status: 413, error: 'payload_too_large' })

// Stores the server does not let clients create.
for (const storeKey of ['secret', 'admin', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype', 'users:1', 'counter2', 'COUNTER']) {
  add({ name: `undeclared store: ${storeKey}`, method: 'POST', target: '/sync', body: proposal({ storeKey }), status: 403, error: 'store_not_allowed' })
}

// Methods and paths.
for (const [method, target] of [
  ['GET', '/sync'],
  ['PUT', '/sync'],
  ['DELETE', '/sync'],
  ['PATCH', '/sync'],
  ['POST', '/sse'],
  ['PUT', '/sse'],
  ['DELETE', '/sse'],
  ['POST', '/state'],
  ['PUT', '/state'],
  ['DELETE', '/state'],
] as const) {
  add({ name: `method: ${method} ${target}`, method, target, body: method === 'GET' || method === 'DELETE' ? null : proposal({}), status: 405, error: 'method_not_allowed' })
}
for (const target of ['/nothing', '/sync/extra', '/SYNC', '/Sse', '/state/', '/sse.json', '/admin', '/%00', '/sync%00', '/.env', '/sync;x']) {
  add({ name: `path: ${target}`, method: 'GET', target, headers: {}, body: null, status: 404, error: 'not_found' })
}

// Query attacks on /sse and /state.
for (const [name, query] of [
  ['invalid key', 'stores=bad%20key'],
  ['traversal', 'stores=..%2Fsecret'],
  ['null byte', 'stores=counter%00'],
  ['empty entries', 'stores=counter,,todos'],
  ['trailing comma', 'stores=counter,'],
  ['leading comma', 'stores=,counter'],
  ['only commas', 'stores=,,,'],
  ['unicode', 'stores=z%C3%A4hler'],
  ['long key', `stores=${'a'.repeat(200)}`],
  ['newline', 'stores=counter%0Aset-cookie'],
  ['script', 'stores=%3Cscript%3E'],
] as const) {
  add({ name: `sse query: ${name}`, method: 'GET', target: `/sse?${query}`, headers: {}, body: null, status: 400, error: 'invalid_store_key' })
  add({ name: `state query: ${name}`, method: 'GET', target: `/state?${query}`, headers: {}, body: null, status: 400, error: 'invalid_store_key' })
}

// Too many stores for one stream, named at once or with the stores followed since.
const storeNames = (count: number, prefix: string) => Array.from({ length: count }, (_, i) => `${prefix}${i}`).join(',')
add({ name: 'sse query: 1,001 stores', method: 'GET', target: `/sse?stores=${storeNames(1001, 's')}`, body: null, status: 400, error: 'too_many_stores' })
add({ name: 'state query: 1,001 stores', method: 'GET', target: `/state?stores=${storeNames(1001, 's')}`, body: null, status: 400, error: 'too_many_stores' })
add({ name: 'sse query: 600 stores and 600 followed', method: 'GET', target: `/sse?stores=${storeNames(600, 's')}&follow=${storeNames(600, 'f')}`, body: null, status: 400, error: 'too_many_stores' })

// What a stream that follows at runtime says it follows and holds.
for (const [name, query, error] of [
  ['followed key invalid', 'stores=&follow=bad%20key&versions=-', 'invalid_store_key'],
  ['followed key empty entry', 'stores=&follow=a,,b&versions=-,-,-', 'invalid_store_key'],
  ['versions without stores', 'versions=1', 'invalid_versions'],
  ['versions too few', 'stores=counter,todos&versions=1', 'invalid_versions'],
  ['versions too many', 'stores=counter&follow=todos&versions=1,2,3', 'invalid_versions'],
  ['version negative', 'stores=counter&versions=-1', 'invalid_versions'],
  ['version fraction', 'stores=counter&versions=1.5', 'invalid_versions'],
  ['version exponent', 'stores=counter&versions=1e3', 'invalid_versions'],
  ['version huge', 'stores=counter&versions=99999999999999999999', 'invalid_versions'],
  ['version word', 'stores=counter&versions=latest', 'invalid_versions'],
] as const) {
  add({ name: `sse query: ${name}`, method: 'GET', target: `/sse?${query}`, body: null, status: 400, error })
}

// The control path: POST /subscribe.
const STREAM = 'AAAAAAAAAAAA.BBBBBBBBBBBBBBBB'
for (const [name, body, status, error] of [
  ['not JSON', '{"streamId":', 400, 'bad_json'],
  ['an array', '[]', 400, 'invalid_body'],
  ['null', 'null', 400, 'invalid_body'],
  ['no stream id', '{"follow":["counter"]}', 400, 'invalid_body'],
  ['stream id a number', '{"streamId":7}', 400, 'invalid_body'],
  ['stream id with a slash', '{"streamId":"a/b.c"}', 400, 'invalid_body'],
  ['stream id too long', JSON.stringify({ streamId: `${'a'.repeat(40)}.b` }), 400, 'invalid_body'],
  ['follow a string', JSON.stringify({ streamId: STREAM, follow: 'counter' }), 400, 'invalid_body'],
  ['unfollow an object', JSON.stringify({ streamId: STREAM, unfollow: { counter: true } }), 400, 'invalid_body'],
  ['follow a bad key', JSON.stringify({ streamId: STREAM, follow: ['../secret'] }), 400, 'invalid_store_key'],
  ['follow a number', JSON.stringify({ streamId: STREAM, follow: [7] }), 400, 'invalid_store_key'],
  ['follow 1,001 stores', JSON.stringify({ streamId: STREAM, follow: storeNames(1001, 's').split(',') }), 400, 'too_many_stores'],
  ['deep', `{"streamId":${'['.repeat(100)}${']'.repeat(100)}}`, 400, 'too_deep'],
  ['a stream nobody holds', JSON.stringify({ streamId: STREAM, follow: ['counter'] }), 404, 'unknown_stream'],
] as const) {
  add({ name: `subscribe: ${name}`, method: 'POST', target: '/subscribe', headers: { 'content-type': 'application/json' }, body, status, error })
}
add({ name: 'subscribe: text/plain', method: 'POST', target: '/subscribe', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ streamId: STREAM }), status: 415, error: 'unsupported_media_type' })
add({ name: 'subscribe: GET', method: 'GET', target: '/subscribe', body: null, status: 405, error: 'method_not_allowed' })

// Actions (the suite's servers define increment, rename and noop).
const action = (fields: Record<string, unknown>, drop: string[] = []) => {
  const body: Record<string, unknown> = { action: 'increment', args: { by: 1 }, epoch: EPOCH_PLACEHOLDER, clientId: CLIENT_PLACEHOLDER, opId: 1, ...fields }
  for (const key of drop) delete body[key]
  return JSON.stringify(body)
}
for (const [name, value] of [
  ['a number', 7],
  ['null', null],
  ['empty', ''],
  ['a space', 'in crement'],
  ['a slash', 'a/b'],
  ['an array', ['increment']],
  ['an object', { name: 'increment' }],
  ['129 characters', 'a'.repeat(129)],
  ['a newline', 'increment\n'],
  ['unicode', 'zähler'],
] as const) {
  add({ name: `action name: ${name}`, method: 'POST', target: '/sync', body: action({ action: value }), status: 400, error: 'invalid_action' })
}
for (const name of ['launch', 'constructor', '__proto__', 'toString', 'hasOwnProperty']) {
  add({ name: `action: unknown ${name}`, method: 'POST', target: '/sync', body: action({ action: name }), status: 400, error: 'unknown_action' })
}
add({ name: 'action: with a store key', method: 'POST', target: '/sync', body: action({ storeKey: 'counter' }), status: 400, error: 'invalid_body' })
add({ name: 'action: with a state', method: 'POST', target: '/sync', body: action({ state: 1 }), status: 400, error: 'invalid_body' })
add({ name: 'action: epoch missing', method: 'POST', target: '/sync', body: action({}, ['epoch']), status: 400, error: 'invalid_epoch' })
add({ name: 'action: client id missing', method: 'POST', target: '/sync', body: action({}, ['clientId']), status: 400, error: 'invalid_client_id' })
add({ name: 'action: op id 0', method: 'POST', target: '/sync', body: action({ opId: 0 }), status: 400, error: 'invalid_op_id' })
add({ name: 'action: op id skips ahead', method: 'POST', target: '/sync', body: action({ opId: 2 }), status: 409, error: 'unknown_client' })
add({ name: 'action: another epoch', method: 'POST', target: '/sync', body: action({ epoch: 'anotherepoch' }), status: 409, error: 'epoch_changed' })
add({ name: 'action: arguments it refuses', method: 'POST', target: '/sync', body: action({ args: { by: 'one' } }), status: 422, error: 'action_refused' })
add({ name: 'action: arguments nested past the limit', method: 'POST', target: '/sync', body: action({ args: JSON.parse(`${'['.repeat(20)}${']'.repeat(20)}`) }), status: 400, error: 'too_deep' })
add({ name: 'action: arguments of 65 KiB', method: 'POST', target: '/sync', body: action({ args: 'x'.repeat(65 * 1024) }), status: 413, error: 'payload_too_large' })
for (const value of [-1, 1.5, '10', null, 1e300]) {
  add({ name: `action: resentAfterMs ${JSON.stringify(value)}`, method: 'POST', target: '/sync', body: action({ resentAfterMs: value }), status: 400, error: 'invalid_body' })
}
add({ name: 'action: an argument JSON reads as Infinity', method: 'POST', target: '/sync', body: action({}).replace('"by":1', '"by":1e400'), status: 422, error: 'invalid_args' })

// The presence path: POST /presence, on a stream the suite opens with `?hello=1` (STREAM_PLACEHOLDER).
// The stream's tab joins no room for good: a case that joins leaves again in the same request.
const TAB = 'hostileTabKey_0123456_'
const ROOM = 'hostile.room'
const presenceBody = (ops: unknown, fields: Record<string, unknown> = {}) => JSON.stringify({ streamId: STREAM_PLACEHOLDER, ops, ...fields })
const presenceOp = (fields: Record<string, unknown> = {}, drop: string[] = []) => {
  const op: Record<string, unknown> = { tab: TAB, room: ROOM, state: 1, ...fields }
  for (const key of drop) delete op[key]
  return op
}
/** Joins `room`, does `ops` there, and leaves. */
const inRoom = (room: string, ...ops: unknown[]) => [{ tab: TAB, room, state: null }, ...ops, { tab: TAB, room, leave: true }]
const addPresence = (name: string, body: string | null, status: number, error?: string, fields: Partial<HostileCase> = {}) =>
  add({ name: `presence: ${name}`, method: 'POST', target: '/presence', body, status, ...(error === undefined ? {} : { error }), ...fields })

// Malformed JSON, and JSON that is not an object.
for (const [name, body] of [
  ['empty', ''],
  ['open brace', '{'],
  ['truncated after key', '{"streamId":'],
  ['truncated in ops', `{"streamId":"${STREAM_PLACEHOLDER}","ops":[{"tab":`],
  ['trailing comma', `{"streamId":"${STREAM_PLACEHOLDER}","ops":[],}`],
  ['trailing garbage', `${presenceBody([])}x`],
  ['two documents', `${presenceBody([])}${presenceBody([])}`],
  ['single quotes', `{'streamId':'${STREAM_PLACEHOLDER}'}`],
  ['NaN state', `{"streamId":"${STREAM_PLACEHOLDER}","ops":[{"tab":"${TAB}","room":"${ROOM}","state":NaN}]}`],
  ['undefined state', `{"streamId":"${STREAM_PLACEHOLDER}","ops":[{"tab":"${TAB}","room":"${ROOM}","state":undefined}]}`],
  ['comment', `/* hi */ ${presenceBody([])}`],
  ['null byte', '\u0000'],
  ['form encoding', `streamId=${STREAM_PLACEHOLDER}&ops=`],
] as const) {
  addPresence(`malformed JSON: ${name}`, body, 400, 'bad_json')
}
for (const [name, body] of [
  ['array', '[]'],
  ['array of requests', `[${presenceBody([])}]`],
  ['string', `"${STREAM_PLACEHOLDER}"`],
  ['number', '42'],
  ['true', 'true'],
  ['null', 'null'],
] as const) {
  addPresence(`not an object: ${name}`, body, 400, 'invalid_body')
}

// The stream id.
for (const [name, streamId] of [
  ['missing', undefined],
  ['empty', ''],
  ['a number', 7],
  ['null', null],
  ['an array', [STREAM_PLACEHOLDER]],
  ['an object', { id: STREAM_PLACEHOLDER }],
  ['no dot', 'justoneword'],
  ['three parts', `${STREAM_PLACEHOLDER}.x`],
  ['a slash', `${STREAM_PLACEHOLDER}/x`],
  ['a leading space', ` ${STREAM_PLACEHOLDER}`],
  ['a newline after', `${STREAM_PLACEHOLDER}\n`],
  ['a part of 33 characters', `${'a'.repeat(33)}.b`],
  ['unicode', 'strëam.id'],
  ['__proto__', '__proto__'],
] as const) {
  addPresence(`stream id ${name}`, presenceBody([], { streamId }), 400, 'invalid_body')
}
// Of the shape, but no stream open: one this server never opened; ones of instances that do not exist (answered after the routed wait).
addPresence('stream id of this server, never opened', presenceBody([presenceOp()], { streamId: `${STREAM_PLACEHOLDER}x` }), 404, 'unknown_stream')
addPresence('stream id of another instance: __proto__.constructor', presenceBody([presenceOp()], { streamId: '__proto__.constructor' }), 404, 'unknown_stream')
addPresence('stream id of another instance: constructor.prototype', presenceBody([]).replace(STREAM_PLACEHOLDER, 'constructor.prototype'), 404, 'unknown_stream')

// The ops.
for (const [name, ops] of [
  ['an object', { 0: presenceOp() }],
  ['a string', 'join'],
  ['null', null],
  ['a number', 1],
  ['257 ops', Array.from({ length: 257 }, () => presenceOp())],
  ['an op null', [null]],
  ['an op a number', [1]],
  ['an op an array', [[TAB, ROOM, 1]]],
  ['an op a string', ['join']],
  ['a bad op after a good one', [presenceOp(), presenceOp({}, ['state'])]],
] as const) {
  addPresence(`ops ${name}`, presenceBody(ops), 400, 'invalid_body')
}
addPresence('no ops at all (a heartbeat)', presenceBody(undefined), 200)
addPresence('256 ops', presenceBody([...Array.from({ length: 255 }, (_, i) => presenceOp({ state: i })), presenceOp({ leave: true }, ['state'])]), 200)

// Tab keys.
for (const [name, tab] of [
  ['missing', undefined],
  ['empty', ''],
  ['21 characters', 't'.repeat(21)],
  ['23 characters', 't'.repeat(23)],
  ['base64, not base64url', `${'t'.repeat(20)}+/`],
  ['padding', `${'t'.repeat(20)}==`],
  ['unicode', 'ä'.repeat(22)],
  ['a space', `${'t'.repeat(21)} `],
  ['a newline', `${'t'.repeat(21)}\n`],
  ['a number', 1234567890123456789012],
  ['null', null],
  ['an array', [TAB]],
  ['an object', { key: TAB }],
  ['__proto__', '__proto__'],
  ['constructor', 'constructor'],
] as const) {
  addPresence(`tab ${name}`, presenceBody([presenceOp({ tab })]), 400, 'invalid_body')
}
addPresence('tab of the right shape that starts __proto__', presenceBody([presenceOp({ tab: '__proto__'.padEnd(22, '_') }), presenceOp({ tab: '__proto__'.padEnd(22, '_'), leave: true }, ['state'])]), 200)

// Rooms: store keys.
for (const [name, room] of [
  ['missing', undefined],
  ['empty', ''],
  ['__proto__', '__proto__'],
  ['__defineGetter__', '__defineGetter__'],
  ['leading dot', '.room'],
  ['space', 'a b'],
  ['slash', 'a/b'],
  ['path traversal', '../etc/passwd'],
  ['null byte', 'room\u0000'],
  ['header injection', 'room\r\nSet-Cookie: x=1'],
  ['unicode', 'räum'],
  ['129 characters', 'r'.repeat(129)],
  ['10,000 characters', 'r'.repeat(10_000)],
  ['a number', 7],
  ['null', null],
  ['an array', [ROOM]],
  ['an object', { key: ROOM }],
] as const) {
  addPresence(`room ${name}`, presenceBody([presenceOp({ room })]), 400, 'invalid_store_key')
}
// Names every object has: plain rooms. Joined and left, and refused by name where the tab broadcasts from outside.
for (const room of ['constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype']) {
  addPresence(`room ${room}: joined and left`, presenceBody(inRoom(room, { tab: TAB, room, state: { [room]: room } })), 200)
  addPresence(`room ${room}: a broadcast from outside is refused by name`, presenceBody([presenceOp({ room, broadcast: room }, ['state'])]), 200, undefined, {
    refused: { [room]: 'invalid_body' },
  })
}
addPresence(
  'rooms refused by name, one each, beside a room applied',
  presenceBody([
    presenceOp({ room: 'constructor', broadcast: 1 }, ['state']),
    presenceOp({ room: 'toString', broadcast: 2 }, ['state']),
    presenceOp({ room: 'constructor', broadcast: 3 }, ['state']),
    ...inRoom('hostile.fine', { tab: TAB, room: 'hostile.fine', broadcast: 'ok' }),
  ]),
  200,
  undefined,
  { refused: { constructor: 'invalid_body', toString: 'invalid_body' } },
)

// What an op does: exactly one of state, leave and broadcast.
for (const [name, fields, drop] of [
  ['none of state, leave and broadcast', {}, ['state']],
  ['state and leave', { leave: true }, []],
  ['state and broadcast', { broadcast: 1 }, []],
  ['leave and broadcast', { leave: true, broadcast: 1 }, ['state']],
  ['leave false', { leave: false }, ['state']],
  ['leave "true"', { leave: 'true' }, ['state']],
  ['leave 1', { leave: 1 }, ['state']],
  ['leave null', { leave: null }, ['state']],
  ['broadcast null', { broadcast: null }, ['state']],
] as const) {
  addPresence(`op with ${name}`, presenceBody([presenceOp(fields, [...drop])]), 400, 'invalid_body')
}

// Prototype tricks: fields hidden where only own properties count, and keys that pollute nothing in values.
addPresence('request fields hidden under __proto__', `{"__proto__":${presenceBody([presenceOp()])}}`, 400, 'invalid_body')
addPresence('request fields hidden under constructor.prototype', `{"constructor":{"prototype":${presenceBody([presenceOp()])}}}`, 400, 'invalid_body')
addPresence('op fields hidden under __proto__', presenceBody([]).replace('"ops":[]', `"ops":[{"__proto__":${JSON.stringify(presenceOp())}}]`), 400, 'invalid_body')
addPresence('leave hidden under __proto__', presenceBody([]).replace('"ops":[]', `"ops":[{"tab":"${TAB}","room":"${ROOM}","__proto__":{"leave":true}}]`), 400, 'invalid_body')
const rawInRoom = (room: string, rawOp: string) => presenceBody([]).replace('"ops":[]', `"ops":[{"tab":"${TAB}","room":"${room}","state":null},${rawOp},{"tab":"${TAB}","room":"${room}","leave":true}]`)
addPresence('state with a __proto__ key', rawInRoom('hostile.proto', `{"tab":"${TAB}","room":"hostile.proto","state":{"__proto__":{"polluted":true},"a":1}}`), 200)
addPresence('state with constructor.prototype', rawInRoom('hostile.proto', `{"tab":"${TAB}","room":"hostile.proto","state":{"constructor":{"prototype":{"polluted":true}}}}`), 200)
addPresence('broadcast with a __proto__ key', rawInRoom('hostile.proto', `{"tab":"${TAB}","room":"hostile.proto","broadcast":{"__proto__":{"polluted":true}}}`), 200)
addPresence('duplicate stream ids: the last counts', `{"streamId":"${STREAM_PLACEHOLDER}","streamId":"no-dot","ops":[]}`, 400, 'invalid_body')

// Presence values and broadcasts: at most 2,048 bytes of JSON, counted as the server encodes them.
const sized = <T>(name: string, value: T, bytes: number): T => {
  const json = JSON.stringify(value)
  if (Buffer.byteLength(json) !== bytes) throw new Error(`${name}: ${Buffer.byteLength(json)} bytes, not ${bytes}`)
  return value
}
for (const [name, atBound] of [
  ['ASCII', 'x'.repeat(2046)],
  ['two-byte é', 'é'.repeat(1023)],
  ['three-byte €', '€'.repeat(682)],
  ['four-byte emoji', `${'🙂'.repeat(511)}xx`],
  ['control characters, escaped', '\u0001'.repeat(341)],
] as const) {
  addPresence(`state of ${name}, exactly 2,048 bytes`, presenceBody(inRoom('hostile.size', { tab: TAB, room: 'hostile.size', state: sized(name, atBound, 2048) })), 200)
  addPresence(`state of ${name}, one byte past`, presenceBody([presenceOp({ state: sized(name, `${atBound}x`, 2049) })]), 413, 'presence_too_large')
}
const objectAtBound = sized('an object', { list: Array.from({ length: 1019 }, () => 0) }, 2048)
addPresence('state an object, exactly 2,048 bytes', presenceBody(inRoom('hostile.size', { tab: TAB, room: 'hostile.size', state: objectAtBound })), 200)
addPresence('state an object, past 2,048 bytes', presenceBody([presenceOp({ state: sized('an object', { list: [...objectAtBound.list, 0] }, 2050) })]), 413, 'presence_too_large')
// Escaped in the request (6 bytes each), counted as re-encoded (2 bytes each).
addPresence('state of é written as \\u00e9, 2,048 bytes re-encoded', presenceBody([]).replace('"ops":[]', `"ops":[{"tab":"${TAB}","room":"hostile.size","state":"${'\\u00e9'.repeat(1023)}"},{"tab":"${TAB}","room":"hostile.size","leave":true}]`), 200)
addPresence('state of é written as \\u00e9, 2,050 bytes re-encoded', presenceBody([]).replace('"ops":[]', `"ops":[{"tab":"${TAB}","room":"hostile.size","state":"${'\\u00e9'.repeat(1024)}"}]`), 413, 'presence_too_large')
addPresence('broadcast exactly 2,048 bytes', presenceBody(inRoom('hostile.size', { tab: TAB, room: 'hostile.size', broadcast: 'x'.repeat(2046) })), 200)
addPresence('broadcast past 2,048 bytes', presenceBody(inRoom('hostile.size', { tab: TAB, room: 'hostile.size', broadcast: 'x'.repeat(2047) })), 413, 'presence_too_large')
addPresence('broadcast of two-byte é past 2,048 bytes', presenceBody(inRoom('hostile.size', { tab: TAB, room: 'hostile.size', broadcast: `${'é'.repeat(1023)}x` })), 413, 'presence_too_large')
addPresence('broadcast exactly 2,048 bytes from outside the room', presenceBody([presenceOp({ room: 'hostile.outside', broadcast: 'x'.repeat(2046) }, ['state'])]), 200, undefined, {
  refused: { 'hostile.outside': 'invalid_body' },
})
addPresence('state of 60 KiB', presenceBody([presenceOp({ state: 'x'.repeat(60 * 1024) })]), 413, 'presence_too_large')
addPresence('state of 10,000 small keys', presenceBody([presenceOp({ state: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, 0])) })]), 413, 'payload_too_large')
addPresence('state of 300 small keys', presenceBody([presenceOp({ state: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, 0])) })]), 413, 'presence_too_large')
addPresence('256 ops of 2,000 bytes each', presenceBody(Array.from({ length: 256 }, () => presenceOp({ state: 'x'.repeat(2000) }))), 413, 'payload_too_large')
addPresence('body of 70 KiB', presenceBody([presenceOp({ state: 'x'.repeat(70 * 1024) })]), 413, 'payload_too_large')
// Depth (the suite's limit is 16).
for (const levels of [17, 1_000, 30_000]) {
  addPresence(`state of ${levels} nested arrays`, presenceBody([]).replace('"ops":[]', `"ops":[{"tab":"${TAB}","room":"${ROOM}","state":${'['.repeat(levels)}${']'.repeat(levels)}}]`), 400, 'too_deep')
}
addPresence('broadcast of 100 nested objects', presenceBody([]).replace('"ops":[]', `"ops":[{"tab":"${TAB}","room":"${ROOM}","broadcast":${'{"a":'.repeat(100)}1${'}'.repeat(100)}}]`), 400, 'too_deep')
addPresence('unbalanced opening brackets only', '['.repeat(10_000), 400, 'too_deep')

// Content types, methods and protocol.
for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', 'application/octet-stream']) {
  addPresence(`content type ${contentType}`, presenceBody([]), 415, 'unsupported_media_type', { headers: { 'content-type': contentType } })
}
addPresence('content type missing', presenceBody([]), 415, 'unsupported_media_type', { headers: {} })
for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
  add({ name: `presence: method ${method}`, method, target: '/presence', body: method === 'GET' || method === 'DELETE' ? null : presenceBody([]), status: 405, error: 'method_not_allowed' })
}
for (const target of ['/presence/', '/Presence', '/presence/extra', '/presence%00']) {
  add({ name: `presence: path ${target}`, method: 'POST', target, body: presenceBody([]), status: 404, error: 'not_found' })
}
addPresence('another protocol version named', presenceBody([]), 400, 'unsupported_protocol', { headers: { ...JSON_TYPE, 'zuno-protocol': '1' } })

const here = fileURLToPath(new URL('./hostile-corpus.json', import.meta.url))
writeFileSync(here, `${JSON.stringify(cases, null, 1)}\n`)
console.log(`${cases.length} cases written to ${here}`)
