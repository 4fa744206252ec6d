import { ERROR_STATUS, type ErrorBody, type ErrorCode } from './protocol'

/** The one error type Zuno throws and rejects with; `code` says what went wrong. */
export class ZunoError extends Error {
  override readonly name = 'ZunoError'
  /** HTTP status the code maps to (0 for errors that only happen on the client). */
  readonly status: number

  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.status = ERROR_STATUS[code]
  }

  /** The JSON body a server answers with. */
  toBody(): ErrorBody {
    return { ok: false, error: this.code, message: this.message }
  }
}

/** True for a `ZunoError`, even one from another copy of the library. */
export function isZunoError(value: unknown): value is ZunoError {
  return value instanceof ZunoError || (value instanceof Error && value.name === 'ZunoError' && 'code' in value)
}
