import type { Redis } from 'ioredis';
import type { Client } from 'minio';
import { ensureTenantRedisUser, removeTenantRedisUser, tenantRedisUsername, tenantRedisUserState } from '../redis-acl.js';
import { tenantRedisPrefix } from '../tenancy.js';
import { s3ErrorCode, tenantStorageLocation, type StorageSettings } from './location.js';

/** What a tenant's namespaces live in: the S3 server (root credentials), Redis (default user) and the layout. */
export interface NamespaceStores {
  s3: Client;
  redis: Redis;
  settings: StorageSettings;
}

/** S3 error codes that mean the bucket is already there (a concurrent create won the race). */
const BUCKET_ALREADY_THERE = new Set(['BucketAlreadyOwnedByYou', 'BucketAlreadyExists']);

/**
 * Makes a bucket unless it exists; idempotent, and safe against a concurrent creator.
 * BucketAlreadyExists alone could mean another account owns the name (on AWS), so it
 * counts as success only when this client can reach the bucket.
 */
export async function ensureBucket(s3: Client, bucket: string): Promise<boolean> {
  if (await s3.bucketExists(bucket)) return false;
  try {
    await s3.makeBucket(bucket);
    return true;
  } catch (error) {
    const code = s3ErrorCode(error);
    if (code === 'BucketAlreadyOwnedByYou') return false;
    if (code && BUCKET_ALREADY_THERE.has(code) && (await s3.bucketExists(bucket))) return false;
    throw error;
  }
}

export interface ProvisionedNamespaces {
  /** The bucket the tenant's objects go to (its own, or the shared one of the prefix layout). */
  bucket: string;
  /** True when this call made the bucket. */
  bucketCreated: boolean;
  redisUser: string;
}

/**
 * Gives a tenant its namespaces: the bucket `tenant-<id>` in the bucket layout (in the prefix
 * layout the shared bucket, made once, serves every tenant, and a prefix needs no making),
 * and its Redis ACL user, on or off. Idempotent: every path that creates a tenant calls it,
 * and the storage service's keeper calls it again for any tenant it finds without them.
 * The user is created without a password: nobody can log in as it until
 * POST /storage/credentials rotates one in.
 */
export async function provisionTenantNamespaces(
  stores: NamespaceStores,
  tenantId: string,
  { enabled }: { enabled: boolean },
): Promise<ProvisionedNamespaces> {
  const location = tenantStorageLocation(tenantId, stores.settings);
  // Each store on its own: S3 being down does not keep the Redis user from being made.
  const [bucket, user] = await Promise.allSettled([
    ensureBucket(stores.s3, location.bucket),
    ensureTenantRedisUser(stores.redis, tenantId, { enabled }),
  ]);
  if (bucket.status === 'rejected') throw bucket.reason;
  if (user.status === 'rejected') throw user.reason;
  return { bucket: location.bucket, bucketCreated: bucket.value, redisUser: tenantRedisUsername(tenantId) };
}

/** A tenant's status as the namespaces follow it; null: the row is gone. */
export type NamespaceStatus = 'active' | 'suspended' | 'deleted' | null;

/**
 * Applies a tenant's status to its namespaces — the one rule the CLI's status commands and
 * the storage service's keeper share: active → the Redis user on and the bucket made if
 * missing; suspended → the user off, which ends its open connections; deleted → off, but no
 * new user (its purge is coming, and would have to remove it again); gone → the user removed.
 * S3 has no such switch through its plain API: the storage service issues no credentials to a
 * tenant that is not active, and those issued expire within 15 minutes. `onlyIfChanged` skips
 * writing a user already in the wanted state (a reconciliation pass over every tenant).
 */
export async function applyTenantStatus(
  stores: NamespaceStores,
  tenantId: string,
  status: NamespaceStatus,
  { onlyIfChanged = false }: { onlyIfChanged?: boolean } = {},
): Promise<void> {
  const current = await tenantRedisUserState(stores.redis, tenantId);
  if (status === null) {
    if (current !== null) await removeTenantRedisUser(stores.redis, tenantId);
    return;
  }
  if (status === 'deleted' && current === null) return;
  const enabled = status === 'active';
  const setUser = async () => {
    if (!onlyIfChanged || current !== (enabled ? 'on' : 'off')) await ensureTenantRedisUser(stores.redis, tenantId, { enabled });
  };
  if (!enabled) return setUser();
  await Promise.all([setUser(), ensureBucket(stores.s3, tenantStorageLocation(tenantId, stores.settings).bucket)]);
}

export interface RemovedNamespaces {
  /** Distinct object keys removed. */
  objects: number;
  /** Object versions and delete markers removed (equal to objects in an unversioned bucket). */
  versions: number;
  /** True when the tenant's own bucket was removed (never the shared bucket of the prefix layout). */
  bucketRemoved: boolean;
  redisKeys: number;
}

export interface RemoveOptions {
  /** Called after each batch of deleted keys or object versions, with its size. */
  onBatch?: (store: 'redis' | 's3', count: number) => void;
}

/** The listing and deleting pass is repeated (new writes may land under still-valid STS credentials) at most this often. */
const EMPTYING_ROUNDS = 5;

/**
 * Removes every version (and delete marker) of every object under `prefix`: a purge that
 * deleted only the latest versions would leave the tenant's data behind in a versioned
 * bucket. Each pass lists from the start and deletes what it saw, so no list marker has to
 * survive the deletions.
 */
async function removeAllVersions(
  s3: Client,
  bucket: string,
  prefix: string,
  onBatch: (count: number) => void,
): Promise<{ objects: number; versions: number }> {
  const keys = new Set<string>();
  let versions = 0;
  for (;;) {
    const batch: Array<{ name: string; versionId?: string }> = [];
    const listing = s3.listObjects(bucket, prefix, true, { IncludeVersion: true }) as AsyncIterable<{ name?: string; versionId?: string | null }>;
    // Leaving the loop early destroys the stream: the rest of the listing is never fetched.
    for await (const item of listing) {
      if (!item.name || !item.name.startsWith(prefix)) continue;
      batch.push(item.versionId ? { name: item.name, versionId: item.versionId } : { name: item.name });
      if (batch.length >= 1000) break;
    }
    if (batch.length === 0) return { objects: keys.size, versions };
    const failures = (await s3.removeObjects(bucket, batch)).filter((result) => result && result.Error);
    if (failures.length > 0) {
      const first = failures[0]!.Error!;
      throw new Error(`S3 refused to delete ${failures.length} object version(s) of ${bucket}, first ${first.Key ?? '?'}: ${first.Code ?? ''} ${first.Message ?? ''}`);
    }
    for (const item of batch) keys.add(item.name);
    versions += batch.length;
    onBatch(batch.length);
  }
}

/** Deletes every Redis key under the tenant's prefix: SCAN (never KEYS, which blocks the server) and UNLINK. */
async function removeRedisKeys(redis: Redis, tenantId: string, onBatch: (count: number) => void): Promise<number> {
  // Braces are not glob characters in Redis MATCH, and a uuid has none of * ? [ ].
  const pattern = `${tenantRedisPrefix(tenantId)}*`;
  let cursor = '0';
  let removed = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) {
      removed += await redis.unlink(...keys);
      onBatch(keys.length);
    }
  } while (cursor !== '0');
  return removed;
}

/**
 * Takes a tenant's namespaces away for good: its Redis ACL user first (which ends its
 * connections, so nothing writes a key behind the SCAN), its keys, then every version of
 * every object — the tenant's whole bucket, removed, in the bucket layout; everything under
 * `<id>/` in the prefix layout. Idempotent: what is already gone counts zero.
 */
export async function removeTenantNamespaces(stores: NamespaceStores, tenantId: string, options: RemoveOptions = {}): Promise<RemovedNamespaces> {
  const onBatch = options.onBatch ?? (() => undefined);
  await removeTenantRedisUser(stores.redis, tenantId);
  const redisKeys = await removeRedisKeys(stores.redis, tenantId, (count) => onBatch('redis', count));

  const location = tenantStorageLocation(tenantId, stores.settings);
  if (!(await stores.s3.bucketExists(location.bucket))) return { objects: 0, versions: 0, bucketRemoved: false, redisKeys };
  const removed = { objects: 0, versions: 0 };
  for (let round = 1; ; round += 1) {
    const pass = await removeAllVersions(stores.s3, location.bucket, location.prefix, (count) => onBatch('s3', count));
    removed.objects += pass.objects;
    removed.versions += pass.versions;
    if (location.layout === 'prefix') return { ...removed, bucketRemoved: false, redisKeys };
    try {
      await stores.s3.removeBucket(location.bucket);
      return { ...removed, bucketRemoved: true, redisKeys };
    } catch (error) {
      // Written to since the listing (credentials issued before a suspension live ≤ 15 min): empty it again.
      if (s3ErrorCode(error) !== 'BucketNotEmpty' || round >= EMPTYING_ROUNDS) throw error;
    }
  }
}
