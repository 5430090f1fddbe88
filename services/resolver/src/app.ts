import express, { type Express } from 'express';
import type { Pool } from 'pg';
import { z } from 'zod';
import { fail } from '../../shared/src/errors/catalog.js';
import { errorHandler, HttpError, notFoundHandler, sendError } from '../../shared/src/http/errors.js';
import { describeIssues } from '../../shared/src/http/parse.js';
import { sameSecret } from '../../shared/src/secrets.js';
import type { Logger } from '../../shared/src/logger.js';
import { normaliseDomain, slugSchema } from '../../shared/src/tenancy.js';
import { memberTokenState, resolveTenant } from './resolve.js';

const uuid = z.uuid();

const resolveQuery = z.discriminatedUnion('by', [
  z.object({
    by: z.literal('member'),
    value: z
      .string()
      .transform((pair) => pair.split(':'))
      .pipe(z.tuple([uuid, uuid])),
  }),
  z.object({ by: z.literal('id'), value: uuid }),
  z.object({ by: z.literal('slug'), value: slugSchema }),
  z.object({
    by: z.literal('domain'),
    value: z.string().max(300).transform((host, context) => {
      const domain = normaliseDomain(host);
      if (domain === null) context.addIssue({ code: 'custom', message: 'is not a host name' });
      return domain ?? '';
    }),
  }),
]);

export interface ResolverDependencies {
  pool: Pool;
  secret: string;
  logger: Logger;
}

export function buildResolverApp({ pool, secret, logger }: ResolverDependencies): Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/healthz', async (_req, res) => {
    try {
      await pool.query('SELECT 1');
      res.json({ status: 'ok' });
    } catch {
      sendError(res, 503, 'unavailable', 'database unreachable');
    }
  });

  app.get('/internal/resolve', async (req, res) => {
    if (!sameSecret(req.get('x-resolver-secret'), secret)) {
      throw fail('unauthenticated', 'resolver secret missing or wrong');
    }
    const parsed = resolveQuery.safeParse(req.query);
    if (!parsed.success) {
      throw fail('validation_failed', describeIssues(parsed.error));
    }
    const query = parsed.data;
    try {
      if (query.by === 'member') {
        const member = await memberTokenState(pool, query.value[0], query.value[1]);
        if (!member) throw fail('member_not_found');
        res.json({ member });
        return;
      }
      const tenant = await resolveTenant(pool, query.by, query.value);
      if (!tenant) throw fail('tenant_not_found');
      res.json({ tenant });
    } catch (error) {
      if (error instanceof HttpError) throw error;
      // The edge serves stale answers on a 503; it must never take this for "not found".
      logger.error({ err: error }, 'lookup failed');
      throw fail('unavailable', 'lookup failed');
    }
  });

  app.use(notFoundHandler);
  app.use(errorHandler(logger));
  return app;
}
