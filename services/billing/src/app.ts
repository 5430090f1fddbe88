import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { errorHandler, HttpError, notFoundHandler } from '../../shared/src/http/errors.js';
import { buildOpenApiDocument } from '../../shared/src/http/openapi.js';
import { mountOperations } from '../../shared/src/http/operation.js';
import type { BillingDependencies } from './deps.js';
import { defineOperation, type Operation } from './http.js';
import { OPERATIONS } from './routes/index.js';

const openApi = defineOperation({
  method: 'get',
  path: '/billing/openapi.json',
  summary: 'This document',
  tag: 'meta',
  auth: 'none',
  responses: { 200: { description: 'OpenAPI 3.1 document' } },
  async handler() {
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

const ALL: readonly Operation[] = [...OPERATIONS, openApi, healthz];
const document = buildOpenApiDocument(ALL, {
  title: 'Tenantry billing service',
  version: '1.0.0',
  description: "Stripe Checkout and Customer Portal for the token's tenant, its subscription and entitlements, and the Stripe webhook inbox.",
});

export function buildBillingApp(deps: BillingDependencies): Express {
  const app = express();
  app.disable('x-powered-by');
  mountOperations(app, ALL, { deps, logger: deps.logger, verify: (token) => deps.verifier.verify(token) });

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

export { ALL as BILLING_OPERATIONS, document as BILLING_OPENAPI_DOCUMENT };
