import os from 'node:os';
import type { Redis } from 'ioredis';
import type { Client as S3Client } from 'minio';
import type pg from 'pg';
import { z } from 'zod';
import { createServicePool } from '../../shared/src/db/pool.js';
import { createLogger } from '../../shared/src/logger.js';
import { publishEdgePurge, type EdgePurge } from '../../shared/src/edge-purge.js';
import { inTransaction as inSharedTransaction } from '../../shared/src/db/transaction.js';
import type { StorageSettings } from '../../shared/src/storage/location.js';
import type { NamespaceStores } from '../../shared/src/storage/namespace.js';
import { cliConfig, need } from './config.js';
import { CliError } from './errors.js';

/** The audit actor of every change the CLI makes: `cli:<os user>`. */
export function actor(): string {
  let name = process.env.USER ?? 'unknown';
  try {
    name = os.userInfo().username;
  } catch {
    // no passwd entry (some containers): keep $USER
  }
  return `cli:${name}`;
}

/** Anything to run a query on: the pool, or a client inside a transaction. */
export type Queryable = pg.Pool | pg.PoolClient;

let pool: pg.Pool | undefined;
let redis: Redis | undefined;
let s3: S3Client | undefined;

/** Postgres as platform_admin (BYPASSRLS); every change it makes is audited by the database. */
export function adminPool(): pg.Pool {
  // A command waits at most 10 s for a connection: an unreachable database is an error to
  // report, not a hang. A statement may take as long as it needs (a purge, an import). A
  // lost connection fails the command's query, which reports it: the pool's log stays silent.
  pool ??= createServicePool({
    connectionString: need('PLATFORM_ADMIN_DATABASE_URL'),
    applicationName: 'tenantry-cli',
    logger: createLogger('tenantry-cli', 'silent'),
    max: 2,
    connectionTimeoutMillis: 10_000,
    queryTimeoutMillis: 0,
  });
  return pool;
}

/** Loaded on first use: most commands never touch Redis or S3, and the clients are slow to import. */
export async function redisClient(): Promise<Redis> {
  if (!redis) {
    const { Redis } = await import('ioredis');
    redis = new Redis(need('REDIS_URL'), { lazyConnect: false, maxRetriesPerRequest: 1, connectTimeout: 5_000 });
    redis.on('error', () => undefined); // reported by the command that needed it
  }
  return redis;
}

export async function s3Client(): Promise<S3Client> {
  if (!s3) {
    const { createS3Client } = await import('../../shared/src/storage/location.js');
    const config = cliConfig();
    s3 = createS3Client(need('S3_ENDPOINT'), {
      accessKey: config.S3_ACCESS_KEY ?? '',
      secretKey: config.S3_SECRET_KEY ?? '',
      region: config.S3_REGION,
    });
  }
  return s3;
}

/** The storage layout, checked against the storage service's own rules (s3ConfigShape). */
export async function storageSettings(): Promise<StorageSettings> {
  const { s3ConfigShape } = await import('../../shared/src/storage/location.js');
  const config = cliConfig();
  const parsed = z
    .object({ STORAGE_LAYOUT: s3ConfigShape.STORAGE_LAYOUT, STORAGE_SHARED_BUCKET: s3ConfigShape.STORAGE_SHARED_BUCKET })
    .safeParse({ STORAGE_LAYOUT: config.STORAGE_LAYOUT || undefined, STORAGE_SHARED_BUCKET: config.STORAGE_SHARED_BUCKET || undefined });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CliError(`${issue.path.join('.')}: ${issue.message} — set it as the storage service has it`);
  }
  return { layout: parsed.data.STORAGE_LAYOUT, sharedBucket: parsed.data.STORAGE_SHARED_BUCKET };
}

/** S3, Redis and the layout: what creating, suspending and purging a tenant's namespaces needs. */
export async function namespaceStores(): Promise<NamespaceStores> {
  const [s3Connection, redisConnection, settings] = await Promise.all([s3Client(), redisClient(), storageSettings()]);
  return { s3: s3Connection, redis: redisConnection, settings };
}

/** The namespace functions, loaded on first use with the clients they drive. */
export const namespaceKit = () => import('../../shared/src/storage/namespace.js');

export async function closeConnections(): Promise<void> {
  const closing: Promise<unknown>[] = [];
  if (pool) closing.push(pool.end());
  if (redis) redis.disconnect();
  pool = undefined;
  redis = undefined;
  s3 = undefined;
  await Promise.allSettled(closing);
}

export interface TransactionOptions {
  reason?: string;
}

/**
 * One audited transaction as platform_admin: BEGIN, name the actor (and a reason) for the
 * audit triggers, work, COMMIT. Deferred rules (the last owner) fail at COMMIT, inside here.
 */
export function inTransaction<T>(work: (client: pg.PoolClient) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  return inSharedTransaction(adminPool(), { 'tenantry.actor': actor(), 'tenantry.reason': options.reason || undefined }, work);
}

/** Tells every edge to forget a tenant (and the slug / domain whose meaning changed). */
export async function purgeEdges(purge: EdgePurge): Promise<void> {
  try {
    await publishEdgePurge(await redisClient(), purge, cliConfig().EDGE_PURGE_STREAM);
  } catch (error) {
    throw new CliError(
      `the change is saved but the edges could not be told (${(error as Error).message}) — check REDIS_URL; edges drop the cached answer within their TTL`,
    );
  }
}
