import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { ErrorCode } from '../errors/catalog.js';
import type { Logger } from '../logger.js';

/** Every service answers errors in one shape: {"error": {"code", "message"}}. */
export interface ErrorBody {
  error: { code: string; message: string };
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    /** A code of the one catalog (services/shared/src/errors/catalog.ts); `fail(code)` builds these. */
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function sendError(res: Response, status: number, code: ErrorCode, message: string): void {
  const body: ErrorBody = { error: { code, message } };
  res.status(status).json(body);
}

export const notFoundHandler: RequestHandler = (_req, res) => sendError(res, 404, 'not_found', 'no such route');

/** Socket errors of a server that is down, restarting or unreachable (Node's codes). */
const UNREACHABLE_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

/**
 * SQLSTATEs of a database that is going away or not back yet: class 08 (connection
 * exception) is matched by prefix; 57P01 admin_shutdown (fast shutdown, pg_terminate_backend),
 * 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up or in recovery), 53300
 * too_many_connections.
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);

/**
 * What node-postgres and ioredis say when the server is gone, carry no code: a connection
 * that ended under a query, pg-pool's acquire timeout (connectionTimeoutMillis), a client
 * that already lost its connection, a statement unanswered past query_timeout; ioredis's commandTimeout, a closed connection, and a
 * command refused while disconnected.
 */
const UNAVAILABLE_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^Client has encountered a connection error and is not queryable/,
  /^Client was closed and is not queryable/,
  /^Query read timeout/,
  /^Command timed out/,
  /^Connection is closed\./,
  /^Stream isn't writeable/,
  /^Reached the max retries per request limit/,
];

/**
 * Whether an error means a dependency (Postgres, Redis) cannot be reached right now, as
 * opposed to a bug: those answer 503 `unavailable`, so clients and the edge retry instead
 * of reading a 500. Follows `cause` and AggregateError (Node's connect to several addresses).
 */
export function isDependencyUnavailable(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 5) return false;
  const { code, message, name, cause, errors } = error as { code?: unknown; message?: unknown; name?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string' && (UNREACHABLE_SOCKET_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) return true;
  if (name === 'MaxRetriesPerRequestError') return true;
  if (typeof message === 'string' && UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(message))) return true;
  if (Array.isArray(errors) && errors.some((inner) => isDependencyUnavailable(inner, depth + 1))) return true;
  return isDependencyUnavailable(cause, depth + 1);
}

/** The last handler: known errors keep their status, anything else is a 500 without details. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, _req, res, _next) => {
    if (error instanceof HttpError) {
      sendError(res, error.status, error.code, error.message);
      return;
    }
    // Express's body parsers mark client mistakes (bad JSON, too large) with a 4xx status.
    const status = (error as { status?: number }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      sendError(res, status, status === 413 ? 'payload_too_large' : 'bad_request', (error as Error).message);
      return;
    }
    if (isDependencyUnavailable(error)) {
      logger.warn({ err: error }, 'dependency unavailable');
      res.set('Retry-After', '2');
      sendError(res, 503, 'unavailable', 'a dependency is unavailable; retry shortly');
      return;
    }
    logger.error({ err: error }, 'unhandled error');
    sendError(res, 500, 'internal', 'internal error');
  };
}
