import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { errorHandler, HttpError, notFoundHandler } from '../../shared/src/http/errors.js';
import type { AuthDependencies } from './deps.js';
import { fail } from './errors.js';
import { bearerToken, defineOperation, parse, type Operation } from './http.js';
import { buildOpenApiDocument } from './openapi.js';
import { OPERATIONS } from './routes/index.js';

const openApi = defineOperation({
  method: 'get',
  path: '/auth/openapi.json',
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
const document = buildOpenApiDocument(ALL);

export function buildAuthApp(deps: AuthDependencies): Express {
  const app = express();
  app.disable('x-powered-by');
  // Behind the edge: the client address (the login throttle's source address) comes from
  // X-Forwarded-For, believed only from these hops; the edge replaces whatever a client sent.
  app.set('trust proxy', deps.trustProxy ?? 'loopback, uniquelocal');
  app.use(express.json({ limit: '64kb' }));

  for (const operation of ALL) {
    app[operation.method](operation.path, async (req: Request, res: Response) => {
      const log = deps.logger.child({ requestId: req.get('x-request-id'), route: operation.path });
      const token = bearerToken(req);
      const principal = token && operation.auth !== 'none' ? deps.tokens.verify(token) : null;
      if (operation.auth === 'token' && !principal) throw fail('unauthenticated');
      if (operation.auth === 'optional' && token && !principal) throw fail('unauthenticated');
      // One rule for every route, before its body is read: a read-only token (impersonation,
      // read-only API key) changes nothing, even on a route that forgot its own check.
      if (principal?.readOnly && operation.method !== 'get') throw fail('forbidden', 'read-only tokens change nothing');
      const body = parse(operation.body, req.body);
      const query = parse(operation.query, req.query);
      const params = parse(operation.params, req.params);
      const reply = await operation.handler({ req, res, deps, log, body, query, params, principal });
      if (reply.headers) res.set(reply.headers);
      res.status(reply.status ?? 200);
      if (reply.body === undefined) res.end();
      else res.json(reply.body);
    });
  }

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

export { ALL as AUTH_OPERATIONS, document as AUTH_OPENAPI_DOCUMENT };
