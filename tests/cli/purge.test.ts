import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Redis } from 'ioredis';
import type { Client as S3Client } from 'minio';
import type pg from 'pg';
import { listTenantTables } from '../../services/shared/src/db/isolation-lint.js';
import { hex, seedTenant, uniqueSlug, type SeededTenant } from '../fixtures/seed.js';
import { createScratchDatabase, poolAs, services } from '../helpers/database.js';
import { aclUser, connectAsTenant, objectVersions, tenantCredentials } from '../storage/lifecycle-helpers.js';
import { cli, cliEnv, objectNames, purgesSince, redisClient, s3Client, streamTail, PURGE_STREAM } from './helpers.js';

let admin: pg.Pool;
let redis: Redis;
let s3: S3Client;
beforeAll(() => {
  admin = poolAs('platform_admin');
  redis = redisClient();
  s3 = s3Client();
});
afterAll(async () => {
  await admin.end();
  await redis.del(PURGE_STREAM);
  redis.disconnect();
});

/** Every row of a tenant in every tenant table, as JSON, for before/after comparison. */
async function snapshot(tenantId: string): Promise<Record<string, unknown[]>> {
  const client = await admin.connect();
  try {
    const tables = await listTenantTables(client);
    const result: Record<string, unknown[]> = {};
    for (const table of tables) {
      const { rows } = await client.query<{ row: unknown }>(
        `SELECT to_jsonb(x) AS row FROM "${table.table}" x WHERE "${table.tenantColumn}" = $1 ORDER BY to_jsonb(x)::text`,
        [tenantId],
      );
      result[table.table] = rows.map((row) => row.row);
    }
    return result;
  } finally {
    client.release();
  }
}

/**
 * A tenant's Redis keys, ACL user and bucket, as the services would have written them; with
 * `versioned`, the bucket keeps every version and one object has two.
 */
async function fillStores(tenant: SeededTenant, keys: number, { versioned = false } = {}): Promise<{ username: string; password: string }> {
  const pipeline = redis.pipeline();
  for (let index = 0; index < keys; index += 1) pipeline.set(`tenant:{${tenant.tenantId}}:cache:${index}`, String(index), 'EX', 600);
  await pipeline.exec();
  const bucket = `tenant-${tenant.tenantId}`;
  await s3.makeBucket(bucket);
  if (versioned) await s3.setBucketVersioning(bucket, { Status: 'Enabled' });
  await s3.putObject(bucket, 'avatars/owner.png', Buffer.from('png-bytes'));
  await s3.putObject(bucket, 'reports/2026/q4.csv', Buffer.from('a,b\n1,2\n'));
  if (versioned) await s3.putObject(bucket, 'reports/2026/q4.csv', Buffer.from('a,b\n1,3\n'));
  return tenantCredentials(redis, tenant.tenantId);
}

const tenantKeys = (tenantId: string) => redis.keys(`tenant:{${tenantId}}:*`); // test-side check only

describe.concurrent('purge', () => {
  test('delete --purge-data removes rows, Redis keys and the bucket of one tenant and nothing of its neighbour', async () => {
    const [victim, neighbour] = await Promise.all([seedTenant(admin, 'victim'), seedTenant(admin, 'neighbour')]);
    const [victimCredentials, neighbourCredentials] = await Promise.all([fillStores(victim, 1200, { versioned: true }), fillStores(neighbour, 30)]);
    expect(await objectVersions(s3, `tenant-${victim.tenantId}`)).toHaveLength(3);
    const neighbourVersions = await objectVersions(s3, `tenant-${neighbour.tenantId}`);
    const neighbourBefore = await snapshot(neighbour.tenantId);
    const victimBefore = await snapshot(victim.tenantId);
    const tail = await streamTail(redis);

    const result = await cli(['tenant', 'delete', victim.slug, '--purge-data', '--yes', '--reason', 'customer asked', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = result.json<{ tenant_id: string; rows: Record<string, number>; redis_keys: number; objects: number; object_versions: number; bucket_removed: boolean }>();
    expect(report).toMatchObject({ tenant_id: victim.tenantId, slug: victim.slug, redis_keys: 1200, objects: 2, object_versions: 3, bucket_removed: true });
    for (const [table, rows] of Object.entries(victimBefore)) {
      // The soft delete before the purge adds its own audit entry.
      if (table === 'audit_log') expect(report.rows[table]).toBe(rows.length + 1);
      else expect(report.rows[table], table).toBe(rows.length);
    }

    // The victim is gone everywhere.
    const after = await snapshot(victim.tenantId);
    for (const [table, rows] of Object.entries(after)) expect(rows, table).toEqual([]);
    expect(await tenantKeys(victim.tenantId)).toEqual([]);
    expect(await s3.bucketExists(`tenant-${victim.tenantId}`)).toBe(false);
    expect(await aclUser(redis, victim.tenantId)).toBeNull();
    expect(await connectAsTenant(services().endpoints.redisUrl, victimCredentials)).toMatchObject({ refused: expect.stringMatching(/WRONGPASS/) });
    expect(await purgesSince(redis, tail)).toContainEqual({ tenant_id: victim.tenantId, slug: victim.slug });

    // What went is on record as a platform entry.
    const { rows: audit } = await admin.query(
      `SELECT tenant_id, actor, reason, after FROM audit_log WHERE action = 'tenants.purge' AND target_id = $1`,
      [victim.tenantId],
    );
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ tenant_id: null, reason: 'customer asked', after: { slug: victim.slug, redis_keys: 1200, objects: 2, object_versions: 3 } });
    expect(audit[0].actor).toMatch(/^cli:/);
    expect(audit[0].after.rows).toEqual(report.rows);

    // The neighbour is untouched: rows, keys, objects.
    expect(await snapshot(neighbour.tenantId)).toEqual(neighbourBefore);
    expect(await tenantKeys(neighbour.tenantId)).toHaveLength(30);
    expect(await objectNames(s3, `tenant-${neighbour.tenantId}`)).toEqual(['avatars/owner.png', 'reports/2026/q4.csv']);
    expect(await objectVersions(s3, `tenant-${neighbour.tenantId}`)).toEqual(neighbourVersions);
    expect(await aclUser(redis, neighbour.tenantId)).toMatchObject({ on: true });
    const neighbourIn = await connectAsTenant(services().endpoints.redisUrl, neighbourCredentials);
    if (!('client' in neighbourIn)) throw new Error(`the neighbour's user was refused: ${neighbourIn.refused}`);
    expect(await neighbourIn.client.set(`tenant:{${neighbour.tenantId}}:app:alive`, 'yes', 'EX', 60)).toBe('OK');
    neighbourIn.client.disconnect();
    // Users are platform identities: they stay.
    expect((await admin.query(`SELECT count(*)::int AS n FROM users WHERE id = $1`, [victim.ownerUserId])).rows[0].n).toBe(1);

    // Clean up the neighbour's stores through the CLI too (its 30 keys and the one its user just wrote).
    const cleanup = await cli(['tenant', 'delete', neighbour.slug, '--purge-data', '--yes']);
    expect(cleanup.code, cleanup.stderr).toBe(0);
    expect(cleanup.stdout).toMatch(new RegExp(`^purged tenant ${neighbour.slug} \\(${neighbour.tenantId}\\): \\d+ rows, 31 Redis keys, 2 objects, bucket removed, Redis user removed\\n$`));
  });

  test('prefix layout: the purge removes every version under <id>/ of the shared bucket, the keys and the user, and nothing of the neighbour', async () => {
    const sharedBucket = `purge-shared-${hex(4)}`;
    const env = cliEnv({ STORAGE_LAYOUT: 'prefix', STORAGE_SHARED_BUCKET: sharedBucket });
    const owner = `prefix-owner-${hex(4)}@example.test`;
    await admin.query(`INSERT INTO users (email, display_name, email_verified_at) VALUES ($1, 'Owner', now())`, [owner]);
    const create = async (label: string) => {
      const created = await cli(['tenant', 'create', label, '--slug', uniqueSlug(label), '--owner', owner, '--json'], { env });
      expect(created.code, created.stderr).toBe(0);
      return created.json<{ id: string; slug: string }>();
    };
    const [victim, neighbour] = [await create('prefix-victim'), await create('prefix-neighbour')];
    await s3.setBucketVersioning(sharedBucket, { Status: 'Enabled' });
    for (const tenant of [victim, neighbour]) {
      await s3.putObject(sharedBucket, `${tenant.id}/docs/a.txt`, Buffer.from('one'));
      await s3.putObject(sharedBucket, `${tenant.id}/docs/a.txt`, Buffer.from('two'));
      await redis.set(`tenant:{${tenant.id}}:app:k`, 'v', 'EX', 600);
    }
    const neighbourVersions = await objectVersions(s3, sharedBucket, `${neighbour.id}/`);

    const purged = await cli(['tenant', 'delete', victim.slug, '--purge-data', '--yes', '--json'], { env });
    expect(purged.code, purged.stderr).toBe(0);
    expect(purged.json()).toMatchObject({ redis_keys: 1, objects: 1, object_versions: 2, bucket_removed: false });
    expect(await objectVersions(s3, sharedBucket, `${victim.id}/`)).toEqual([]);
    expect(await aclUser(redis, victim.id)).toBeNull();
    expect(await tenantKeys(victim.id)).toEqual([]);
    expect(await objectVersions(s3, sharedBucket, `${neighbour.id}/`)).toEqual(neighbourVersions);
    expect(await aclUser(redis, neighbour.id)).toMatchObject({ on: true });
    expect(await tenantKeys(neighbour.id)).toHaveLength(1);
    expect((await cli(['tenant', 'delete', neighbour.slug, '--purge-data', '--yes'], { env })).code).toBe(0);
  });

  test('purge-expired purges deleted tenants past purge_after and keeps the others', async () => {
    const [expired, waiting, active] = await Promise.all([seedTenant(admin, 'expired'), seedTenant(admin, 'waiting'), seedTenant(admin, 'active')]);
    expect((await cli(['tenant', 'delete', expired.slug, '--yes'])).code).toBe(0);
    expect((await cli(['tenant', 'delete', waiting.slug, '--yes'])).code).toBe(0);
    await admin.query(`UPDATE tenants SET purge_after = now() - interval '1 minute' WHERE id = $1`, [expired.tenantId]);

    // Named tenants only: other suites share this database.
    const result = await cli(['tenant', 'purge-expired', expired.slug, waiting.slug, active.slug, '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.json<Array<{ tenant_id: string }>>().map((report) => report.tenant_id)).toEqual([expired.tenantId]);
    const { rows } = await admin.query<{ id: string; status: string }>(
      `SELECT id, status FROM tenants WHERE id = ANY($1::uuid[]) ORDER BY status`,
      [[expired.tenantId, waiting.tenantId, active.tenantId]],
    );
    expect(rows).toEqual([
      { id: active.tenantId, status: 'active' },
      { id: waiting.tenantId, status: 'deleted' },
    ]);
    const none = await cli(['tenant', 'purge-expired', waiting.slug]);
    expect(none.stdout).toBe('no deleted tenant is past its retention period\n');
  });

  test('purge-expired without names is the retention job: with TENANTRY_RETENTION_DAYS=0 a deleted tenant goes at once', async () => {
    // A database of its own: the job purges every expired tenant it finds.
    const scratch = await createScratchDatabase({ migrated: true });
    try {
      const env = cliEnv({ PLATFORM_ADMIN_DATABASE_URL: scratch.url('platform_admin'), TENANTRY_RETENTION_DAYS: '0' });
      const kept = uniqueSlug('kept');
      const gone = uniqueSlug('gone');
      const owner = `retention-owner-${kept}@example.test`;
      expect((await cli(['user', 'create', owner], { env })).code).toBe(0);
      for (const slug of [kept, gone]) expect((await cli(['tenant', 'create', 'Retention', '--slug', slug, '--owner', owner], { env })).code).toBe(0);
      expect((await cli(['tenant', 'delete', gone, '--yes'], { env })).code).toBe(0);
      const job = await cli(['tenant', 'purge-expired'], { env });
      expect(job.code, job.stderr).toBe(0);
      expect(job.stdout).toMatch(new RegExp(`^purged tenant ${gone} \\([0-9a-f-]{36}\\): \\d+ rows, 0 Redis keys, 0 objects, bucket removed, Redis user removed\\n$`));
      const list = await cli(['tenant', 'list', '--json'], { env });
      expect(list.json<Array<{ slug: string }>>().map((row) => row.slug)).toEqual([kept]);
    } finally {
      await scratch.drop();
    }
  });
});
