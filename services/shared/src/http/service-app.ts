import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import type { Principal } from '../auth/verifier.js';
import type { Logger } from '../logger.js';
import { errorHandler, HttpError, notFoundHandler } from './errors.js';
import { buildOpenApiDocument, type ApiInfo } from './openapi.js';
import { mountOperations, operationsFor, type Operation, type Reply } from './operation.js';

/** What every service's health check and logging need of its dependencies. */
export interface ServiceBasics {
  pool: Pool;
  redis: Redis;
  logger: Logger;
}

/**
 * A service's operations with the two every service has: its OpenAPI document at
 * `/<service>/openapi.json`, built from the same schemas that validate its requests, and
 * `/healthz`, which answers only when Postgres and Redis do.
 */
export function serviceOperations<D extends ServiceBasics>(
  service: string,
  operations: readonly Operation<D>[],
  info: ApiInfo,
): { operations: readonly Operation<D>[]; document: Record<string, unknown> } {
  const defineOperation = operationsFor<D>();
  let document: Record<string, unknown> = {};
  const openApi: Operation<D> = defineOperation({
    method: 'get',
    path: `/${service}/openapi.json`,
    summary: 'This document',
    tag: 'meta',
    auth: 'none',
    responses: { 200: { description: 'OpenAPI 3.1 document' } },
    async handler(): Promise<Reply> {
      return { body: document };
    },
  });
  const healthz = defineOperation({
    method: 'get',
    path: '/healthz',
    summary: 'Liveness and readiness: Postgres and Redis answer',
    tag: 'meta',
    auth: 'none',
    responses: { 200: { description: 'ok' }, 503: { description: 'a dependency is unreachable' } },
    async handler({ deps }) {
      try {
        await Promise.all([deps.pool.query('SELECT 1'), deps.redis.ping()]);
        return { body: { status: 'ok' } };
      } catch {
        return { status: 503, body: { error: { code: 'unavailable', message: 'database or redis unreachable' } } };
      }
    },
  });
  const all: readonly Operation<D>[] = [...operations, openApi, healthz];
  document = buildOpenApiDocument(all, info);
  return { operations: all, document };
}

/**
 * The Express app of a service: its operations mounted on the shared kit, 404s and errors in
 * the one shape, and every 401 / 403 logged (a refusal is what an attack looks like).
 */
export function buildServiceApp<D extends ServiceBasics>(
  operations: readonly Operation<D>[],
  deps: D,
  options: { verify: (token: string) => Principal | null; trustProxy?: string },
): Express {
  const app = express();
  app.disable('x-powered-by');
  // Behind the edge: the client address comes from X-Forwarded-For, believed only from these
  // hops; the edge replaces whatever a client sent.
  app.set('trust proxy', options.trustProxy ?? 'loopback, uniquelocal');
  mountOperations(app, operations, { deps, logger: deps.logger, verify: options.verify });

  app.use(notFoundHandler);
  const fallback = errorHandler(deps.logger);
  app.use((error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (error instanceof HttpError && (error.status === 401 || error.status === 403)) {
      deps.logger.warn({ code: error.code, route: req.path, requestId: req.get('x-request-id') }, 'refused');
    }
    fallback(error, req, res, next);
  });
  return app;
}
