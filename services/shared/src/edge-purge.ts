import type { Redis } from 'ioredis';

export const DEFAULT_PURGE_STREAM = 'edge:purges';
/** Purges older than this many entries are trimmed: every edge polls far more often. */
const STREAM_LENGTH = 10_000;

export interface EdgePurge {
  tenantId?: string;
  slug?: string;
  domain?: string;
}

/**
 * Tells every edge to drop what it cached about a tenant (and about a slug or domain
 * whose meaning changed). Each edge's worker polls the stream; see nginx/lua/tenantry/purge.lua.
 */
export async function publishEdgePurge(redis: Redis, purge: EdgePurge, stream = DEFAULT_PURGE_STREAM): Promise<string> {
  const fields: string[] = [];
  if (purge.tenantId) fields.push('tenant_id', purge.tenantId);
  if (purge.slug) fields.push('slug', purge.slug);
  if (purge.domain) fields.push('domain', purge.domain);
  if (fields.length === 0) throw new Error('an edge purge names a tenant id, a slug or a domain');
  const id = await redis.xadd(stream, 'MAXLEN', '~', String(STREAM_LENGTH), '*', ...fields);
  return id!;
}
