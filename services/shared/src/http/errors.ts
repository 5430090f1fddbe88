import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { Logger } from '../logger.js';

/** Every service answers errors in one shape: {"error": {"code", "message"}}. */
export interface ErrorBody {
  error: { code: string; message: string };
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function sendError(res: Response, status: number, code: string, message: string): void {
  const body: ErrorBody = { error: { code, message } };
  res.status(status).json(body);
}

export const notFoundHandler: RequestHandler = (_req, res) => sendError(res, 404, 'not_found', 'no such route');

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
      sendError(res, status, 'bad_request', (error as Error).message);
      return;
    }
    logger.error({ err: error }, 'unhandled error');
    sendError(res, 500, 'internal', 'internal error');
  };
}
