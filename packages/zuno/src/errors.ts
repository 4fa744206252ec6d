import { type ErrorBody, type ErrorCode, type SchemaIssue, statusOfCode } from './protocol'

/** The one error type Zuno throws and rejects with; `code` says what went wrong. */
export class ZunoError extends Error {
  /** Always `ZunoError`: how {@link isZunoError} knows one from another copy of the library. */
  override readonly name = 'ZunoError'
  /** HTTP status the code maps to (0 for errors that only happen on the client). */
  readonly status: number

  /** With `invalid_state`: what the schema found wrong. */
  readonly issues: readonly SchemaIssue[] | undefined
  /** Seconds to wait before trying again (429 and 503 answers). */
  readonly retryAfter: number | undefined

  constructor(
    /** What went wrong, for code to branch on (see {@link ERROR_STATUS}). */
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; issues?: readonly SchemaIssue[]; retryAfter?: number },
  ) {
    super(message, options)
    this.status = statusOfCode(code)
    this.issues = options?.issues
    this.retryAfter = options?.retryAfter
  }

  /** The JSON body a server answers with. */
  toBody(): ErrorBody {
    const body: ErrorBody = { ok: false, error: this.code, message: this.message }
    if (this.issues !== undefined) body.issues = this.issues
    return body
  }
}

/** True for a `ZunoError`, even one from another copy of the library. */
export function isZunoError(value: unknown): value is ZunoError {
  return value instanceof ZunoError || (value instanceof Error && value.name === 'ZunoError' && 'code' in value)
}
