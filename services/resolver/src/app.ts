import { timingSafeEqual } from 'node:crypto';
import express, { type Express } from 'express';
import type { Pool } from 'pg';
import { z } from 'zod';
import { errorHandler, HttpError, notFoundHandler, sendError } from '../../shared/src/http/errors.js';
import type { Logger } from '../../shared/src/logger.js';
import { normaliseDomain, slugSchema } from '../../shared/src/tenancy.js';
import { memberTokenState, resolveTenant } from './resolve.js';

const uuid = z.string().uuid();

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

function sameSecret(given: string | undefined, expected: Buffer): boolean {
  if (given === undefined) return false;
  const candidate = Buffer.from(given);
  return candidate.length === expected.length && timingSafeEqual(candidate, expected);
}

export interface ResolverDependencies {
  pool: Pool;
  secret: string;
  logger: Logger;
}

export function buildResolverApp({ pool, secret, logger }: ResolverDependencies): Express {
  const expected = Buffer.from(secret);
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
    if (!sameSecret(req.get('x-resolver-secret'), expected)) {
      throw new HttpError(401, 'unauthorized', 'resolver secret missing or wrong');
    }
    const parsed = resolveQuery.safeParse(req.query);
    if (!parsed.success) {
      throw new HttpError(400, 'invalid_request', parsed.error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`).join('; '));
    }
    const query = parsed.data;
    try {
      if (query.by === 'member') {
        const member = await memberTokenState(pool, query.value[0], query.value[1]);
        if (!member) throw new HttpError(404, 'member_not_found', 'no such member');
        res.json({ member });
        return;
      }
      const tenant = await resolveTenant(pool, query.by, query.value);
      if (!tenant) throw new HttpError(404, 'tenant_not_found', 'no such tenant');
      res.json({ tenant });
    } catch (error) {
      if (error instanceof HttpError) throw error;
      // The edge serves stale answers on a 503; it must never take this for "not found".
      logger.error({ err: error }, 'lookup failed');
      throw new HttpError(503, 'unavailable', 'lookup failed');
    }
  });

  app.use(notFoundHandler);
  app.use(errorHandler(logger));
  return app;
}
