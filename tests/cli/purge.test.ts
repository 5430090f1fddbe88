import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Redis } from 'ioredis';
import type { Client as S3Client } from 'minio';
import type pg from 'pg';
import { listTenantTables } from '../../services/shared/src/db/isolation-lint.js';
import { seedTenant, uniqueSlug, type SeededTenant } from '../fixtures/seed.js';
import { createScratchDatabase, poolAs } from '../helpers/database.js';
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

/** A tenant's Redis keys and bucket, as the services would have written them. */
async function fillStores(tenant: SeededTenant, keys: number): Promise<void> {
  const pipeline = redis.pipeline();
  for (let index = 0; index < keys; index += 1) pipeline.set(`tenant:{${tenant.tenantId}}:cache:${index}`, String(index), 'EX', 600);
  await pipeline.exec();
  const bucket = `tenant-${tenant.tenantId}`;
  await s3.makeBucket(bucket);
  await s3.putObject(bucket, 'avatars/owner.png', Buffer.from('png-bytes'));
  await s3.putObject(bucket, 'reports/2026/q4.csv', Buffer.from('a,b\n1,2\n'));
}

const tenantKeys = (tenantId: string) => redis.keys(`tenant:{${tenantId}}:*`); // test-side check only

describe.concurrent('purge', () => {
  test('delete --purge-data removes rows, Redis keys and the bucket of one tenant and nothing of its neighbour', async () => {
    const [victim, neighbour] = await Promise.all([seedTenant(admin, 'victim'), seedTenant(admin, 'neighbour')]);
    await Promise.all([fillStores(victim, 1200), fillStores(neighbour, 30)]);
    const neighbourBefore = await snapshot(neighbour.tenantId);
    const victimBefore = await snapshot(victim.tenantId);
    const tail = await streamTail(redis);

    const result = await cli(['tenant', 'delete', victim.slug, '--purge-data', '--yes', '--reason', 'customer asked', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = result.json<{ tenant_id: string; rows: Record<string, number>; redis_keys: number; objects: number; bucket_removed: boolean }>();
    expect(report).toMatchObject({ tenant_id: victim.tenantId, slug: victim.slug, redis_keys: 1200, objects: 2, bucket_removed: true });
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
    expect(await purgesSince(redis, tail)).toContainEqual({ tenant_id: victim.tenantId, slug: victim.slug });

    // What went is on record as a platform entry.
    const { rows: audit } = await admin.query(
      `SELECT tenant_id, actor, reason, after FROM audit_log WHERE action = 'tenants.purge' AND target_id = $1`,
      [victim.tenantId],
    );
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ tenant_id: null, reason: 'customer asked', after: { slug: victim.slug, redis_keys: 1200, objects: 2 } });
    expect(audit[0].actor).toMatch(/^cli:/);
    expect(audit[0].after.rows).toEqual(report.rows);

    // The neighbour is untouched: rows, keys, objects.
    expect(await snapshot(neighbour.tenantId)).toEqual(neighbourBefore);
    expect(await tenantKeys(neighbour.tenantId)).toHaveLength(30);
    expect(await objectNames(s3, `tenant-${neighbour.tenantId}`)).toEqual(['avatars/owner.png', 'reports/2026/q4.csv']);
    // Users are platform identities: they stay.
    expect((await admin.query(`SELECT count(*)::int AS n FROM users WHERE id = $1`, [victim.ownerUserId])).rows[0].n).toBe(1);

    // Clean up the neighbour's stores through the CLI too.
    const cleanup = await cli(['tenant', 'delete', neighbour.slug, '--purge-data', '--yes']);
    expect(cleanup.code, cleanup.stderr).toBe(0);
    expect(cleanup.stdout).toMatch(new RegExp(`^purged tenant ${neighbour.slug} \\(${neighbour.tenantId}\\): \\d+ rows, 30 Redis keys, 2 objects, bucket removed\\n$`));
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
      expect(job.stdout).toMatch(new RegExp(`^purged tenant ${gone} \\([0-9a-f-]{36}\\): \\d+ rows, 0 Redis keys, 0 objects\\n$`));
      const list = await cli(['tenant', 'list', '--json'], { env });
      expect(list.json<Array<{ slug: string }>>().map((row) => row.slug)).toEqual([kept]);
    } finally {
      await scratch.drop();
    }
  });
});
