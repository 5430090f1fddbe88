import { z } from 'zod';
import { postgresUrl } from '../../shared/src/config.js';

export const resolverConfigSchema = z.object({
  /** app_service's URL: the resolver reads through SECURITY DEFINER functions only. */
  DATABASE_URL: postgresUrl,
  RESOLVER_HOST: z.string().default('127.0.0.1'),
  RESOLVER_PORT: z.coerce.number().int().min(1).max(65535).default(4001),
  /** Sent by the edge on every subrequest; the resolver answers nobody else. */
  RESOLVER_SECRET: z.string().min(16, 'must be at least 16 characters'),
  LOG_LEVEL: z.string().default('info'),
});

export type ResolverConfig = z.infer<typeof resolverConfigSchema>;
