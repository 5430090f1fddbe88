import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import { Redis } from 'ioredis';
import type { Client as S3Client } from 'minio';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startRedis, stopProcess, type RedisInstance } from '../../scripts/native/services.js';
import { ensureTenantRedisUser } from '../../services/shared/src/redis-acl.js';
import { startNamespaceKeeper, type NamespaceKeeper } from '../../services/storage/src/namespace-keeper.js';
import { uniqueSlug } from '../fixtures/seed.js';
import { createScratchDatabase, services, type ScratchDatabase } from '../helpers/database.js';
import { aclUser, closedWithin, connectAsTenant, rootS3, tenantCredentials } from './lifecycle-helpers.js';

/**
 * The keeper runs on a database and a Redis of this file's own: it applies every tenant it
 * hears of and reconciles every ACL user it finds, so on the shared ones it would make
 * buckets for other suites' tenants and remove users whose tenants it cannot see.
 */
let scratch: ScratchDatabase;
let admin: pg.Pool;
let appService: pg.Pool;
let redisDir: string;
let redisServer: RedisInstance;
let redis: Redis;
let s3: S3Client;
const keepers: NamespaceKeeper[] = [];

function startKeeper(): NamespaceKeeper {
  const keeper = startNamespaceKeeper({
    listenDatabaseUrl: scratch.url('app_service'),
    pool: appService,
    redis,
    s3,
    settings: { layout: 'bucket', sharedBucket: 'tenantry-files' },
    logger: pino({ level: 'silent' }),
    reconcileIntervalMs: 3_600_000,
  });
  keepers.push(keeper);
  return keeper;
}

beforeAll(async () => {
  scratch = await createScratchDatabase({ migrated: true });
  admin = new pg.Pool({ connectionString: scratch.url('platform_admin'), max: 3 });
  appService = new pg.Pool({ connectionString: scratch.url('app_service'), max: 4 });
  redisDir = await mkdtemp(path.join(os.tmpdir(), 'tenantry-keeper-redis-'));
  redisServer = await startRedis({ port: await getPort(), dataDir: path.join(redisDir, 'data'), logFile: path.join(redisDir, 'redis.log'), detached: false });
  redis = new Redis(redisServer.url);
  s3 = rootS3();
});

afterAll(async () => {
  await Promise.all(keepers.map((keeper) => keeper.stop()));
  redis?.disconnect();
  if (redisServer) await stopProcess(redisServer.pid);
  await Promise.all([admin?.end(), appService?.end()]);
  await scratch?.drop();
  if (redisDir) await rm(redisDir, { recursive: true, force: true });
});

async function createTenant(): Promise<string> {
  const slug = uniqueSlug('keeper');
  const { rows } = await admin.query<{ id: string }>(`INSERT INTO tenants (slug, name) VALUES ($1, 'Keeper') RETURNING id`, [slug]);
  return rows[0]!.id;
}

async function eventually<T>(what: string, probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const setStatus = (tenantId: string, status: 'active' | 'suspended' | 'deleted') =>
  admin.query(
    `UPDATE tenants SET status = $2::tenant_status, purge_after = CASE WHEN $2 = 'deleted' THEN now() + interval '30 days' END WHERE id = $1`,
    [tenantId, status],
  );

describe('the namespace keeper', () => {
  let keeper: NamespaceKeeper;
  beforeAll(async () => {
    keeper = startKeeper();
    await keeper.reconcile();
  });

  test('a tenant inserted by anyone gets its bucket and its Redis user, on', { retry: 2 }, async () => {
    const tenantId = await createTenant();
    await eventually('user', () => aclUser(redis, tenantId), (user) => user?.on === true);
    await eventually('bucket', () => s3.bucketExists(`tenant-${tenantId}`), Boolean);
  });

  test("a platform admin's plain UPDATE to suspended drops the tenant's live Redis connection within a second and refuses AUTH; active lets it in again", { retry: 2 }, async () => {
    const tenantId = await createTenant();
    await eventually('user', () => aclUser(redis, tenantId), (user) => user?.on === true);
    const credentials = await tenantCredentials(redis, tenantId);
    const live = await connectAsTenant(redisServer.url, credentials);
    if (!('client' in live)) throw new Error(`could not connect: ${live.refused}`);
    await live.client.set(`tenant:{${tenantId}}:app:greeting`, 'hello');

    const elapsed = await closedWithin(live.client, 1_000, () => setStatus(tenantId, 'suspended'));
    expect(elapsed).toBeLessThan(1_000);
    expect(await connectAsTenant(redisServer.url, credentials)).toMatchObject({ refused: expect.stringMatching(/WRONGPASS/) });

    await setStatus(tenantId, 'active');
    const back = await eventually('reconnect', () => connectAsTenant(redisServer.url, credentials), (result) => 'client' in result);
    if ('client' in back) {
      expect(await back.client.get(`tenant:{${tenantId}}:app:greeting`)).toBe('hello');
      back.client.disconnect();
    }
  });

  test('a soft-deleted tenant is off; its deleted row removes the user', { retry: 2 }, async () => {
    const tenantId = await createTenant();
    await eventually('user', () => aclUser(redis, tenantId), (user) => user?.on === true);
    await setStatus(tenantId, 'deleted');
    await eventually('user off', () => aclUser(redis, tenantId), (user) => user?.on === false);
    await admin.query(`DELETE FROM tenants WHERE id = $1`, [tenantId]);
    await eventually('user removed', () => aclUser(redis, tenantId), (user) => user === null);
  });

  test('the listening connection terminated by the server: the keeper reconnects and applies what changed meanwhile', { retry: 2 }, async () => {
    const tenantId = await createTenant();
    await eventually('user', () => aclUser(redis, tenantId), (user) => user?.on === true);
    const superuser = new pg.Client({ connectionString: services().endpoints.postgresAdminUrl });
    await superuser.connect();
    try {
      const { rows } = await superuser.query<{ terminated: boolean }>(
        `SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE datname = $1 AND application_name = 'tenantry-storage-keeper'`,
        [scratch.name],
      );
      expect(rows.map((row) => row.terminated)).toEqual([true]);
    } finally {
      await superuser.end();
    }
    // Changed while nobody listened: the reconnection's reconciliation applies it.
    await setStatus(tenantId, 'suspended');
    await eventually('user off', () => aclUser(redis, tenantId), (user) => user?.on === false, 15_000);
    // And it listens again.
    await eventually(
      'listening again',
      async () => (await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tenantry-storage-keeper'`)).rows[0].n as number,
      (count) => count === 1,
      15_000,
    );
    const next = await createTenant();
    await eventually('user of a tenant made after the reconnection', () => aclUser(redis, next), (user) => user?.on === true);
  });
});

describe('the namespace keeper, reconciling', () => {
  /** How often Redis ran ACL SAVE: each one rewrites the whole ACL file. */
  async function aclSaves(): Promise<number> {
    const stats = (await redis.call('INFO', 'commandstats')) as string;
    return Number(/^cmdstat_acl\|save:calls=(\d+)/m.exec(stats)?.[1] ?? 0);
  }

  test('a pass over tenants in step writes nothing; a user out of step is put back', { retry: 2 }, async () => {
    const keeper = startKeeper();
    const [active, suspended] = [await createTenant(), await createTenant()];
    await setStatus(suspended, 'suspended');
    await eventually('users', async () => [await aclUser(redis, active), await aclUser(redis, suspended)], ([a, b]) => a?.on === true && b?.on === false);
    await keeper.reconcile();
    const before = await aclSaves();
    expect(await keeper.reconcile()).toBeGreaterThanOrEqual(2);
    expect(await aclSaves()).toBe(before);

    // Someone turned the suspended tenant's user on behind the platform's back.
    await redis.call('ACL', 'SETUSER', `tenant-${suspended}`, 'on');
    await keeper.reconcile();
    expect(await aclUser(redis, suspended)).toMatchObject({ on: false });
    expect(await aclSaves()).toBeGreaterThan(before);
    await keeper.stop();
  });
});

describe('the namespace keeper, started after changes it did not hear', () => {
  test('at start it turns off the user of a tenant suspended meanwhile, and removes the user of a tenant that is gone', async () => {
    const [suspended, gone] = [await createTenant(), await createTenant()];
    // Users as an earlier keeper left them; then changes nobody heard.
    await ensureTenantRedisUser(redis, suspended, { enabled: true });
    await ensureTenantRedisUser(redis, gone, { enabled: true });
    await Promise.all(keepers.splice(0).map((running) => running.stop()));
    await setStatus(suspended, 'suspended');
    await admin.query(`DELETE FROM tenants WHERE id = $1`, [gone]);
    expect(await aclUser(redis, suspended)).toMatchObject({ on: true });

    const keeper = startKeeper();
    await eventually('suspended user off', () => aclUser(redis, suspended), (user) => user?.on === false, 10_000);
    await eventually('gone user removed', () => aclUser(redis, gone), (user) => user === null, 10_000);
    await keeper.stop();
  });

  test('at start it makes the namespaces of a tenant created while no keeper ran, whose own provisioning failed', async () => {
    await Promise.all(keepers.splice(0).map((running) => running.stop()));
    // Inserted with no keeper listening and nothing provisioned: no user, no bucket to find it by.
    const missed = await createTenant();
    expect(await aclUser(redis, missed)).toBeNull();
    const keeper = startKeeper();
    await eventually('missed user made', () => aclUser(redis, missed), (user) => user?.on === true, 10_000);
    await keeper.stop();
  });
});
