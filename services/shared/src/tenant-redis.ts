import type { Redis } from 'ioredis';
import { tenantAppPrefix, tenantPlatformPrefix, tenantRedisPrefix } from './tenancy.js';

export { tenantAppPrefix, tenantPlatformPrefix, tenantRedisPrefix } from './tenancy.js';

export type KeyPart = string | number;

/** One tenant's view of Redis: the only way services build a tenant's keys. */
export interface TenantRedis {
  readonly redis: Redis;
  readonly tenantId: string;
  /** `tenant:{<id>}:`: every key of the tenant, platform's and app's, starts with it. */
  readonly prefix: string;
  /** A platform key (`tenant:{<id>}:platform:<parts>`): counters and throttles the tenant's user cannot reach. */
  key(...parts: KeyPart[]): string;
  /** A key or channel of the tenant's own apps (`tenant:{<id>}:app:<parts>`), as its ACL user sees them. */
  appKey(...parts: KeyPart[]): string;
  /** `key` when it is this tenant's, else a TypeError: for keys that arrive from elsewhere. */
  assertOwnKey(key: string): string;
}

function joinParts(prefix: string, parts: KeyPart[]): string {
  if (parts.length === 0) throw new TypeError('a Redis key needs at least one part after the prefix');
  const texts = parts.map((part) => String(part));
  // An empty part would make `a::b`, which reads as another key's name.
  if (texts.some((text) => text === '')) throw new TypeError(`a Redis key part is empty: ${JSON.stringify(texts)}`);
  return prefix + texts.join(':');
}

/**
 * Keys under `tenant:{<id>}:` (a Redis Cluster hash tag, so a tenant's keys share one slot
 * and the purge finds them with one pattern), split into the platform's sub-namespace and
 * the app's. The id must be a tenant id (lower-case uuid): anything else throws here.
 */
export function tenantRedis(redis: Redis, tenantId: string): TenantRedis {
  const prefix = tenantRedisPrefix(tenantId);
  const platform = tenantPlatformPrefix(tenantId);
  const app = tenantAppPrefix(tenantId);
  return {
    redis,
    tenantId,
    prefix,
    key: (...parts) => joinParts(platform, parts),
    appKey: (...parts) => joinParts(app, parts),
    assertOwnKey(key) {
      if (typeof key !== 'string' || !key.startsWith(prefix) || key.length === prefix.length) {
        throw new TypeError(`not a Redis key of tenant ${tenantId}: ${JSON.stringify(key)}`);
      }
      return key;
    },
  };
}
