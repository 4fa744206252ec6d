/** Stands for the epoch of the server under test in the hostile corpus; the suite puts it in before sending. */
export const EPOCH_PLACEHOLDER = '$EPOCH'
/** Stands for a fresh client id, one per case; the suite puts it in before sending. */
export const CLIENT_PLACEHOLDER = '$CLIENT.$CLIENTCLIENTCLIENTCLIENTCL'
/** Stands for the id of a stream the suite opens with `?hello=1` (for `POST /presence`); the suite puts it in before sending. */
export const STREAM_PLACEHOLDER = '$STREAM'
