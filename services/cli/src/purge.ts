import { listTenantTables } from '../../shared/src/db/isolation-lint.js';
import { quoteIdent } from '../../shared/src/ids.js';
import { tenantBucket, tenantRedisPrefix } from '../../shared/src/tenancy.js';
import { adminPool, inTransaction, redisClient, s3Client } from './context.js';
import { findTenant, purgeTenantFromEdges, type TenantRow } from './tenants.js';
import { progress } from './progress.js';

export interface PurgeReport {
  tenant_id: string;
  slug: string;
  rows: Record<string, number>;
  redis_keys: number;
  objects: number;
  bucket_removed: boolean;
}


/** Removes every key under the tenant's prefix with SCAN (never KEYS) and UNLINK. */
async function purgeRedis(tenantId: string, onBatch: (count: number) => void): Promise<number> {
  const redis = await redisClient();
  // A literal { in MATCH is fine; escape glob characters of the id (there are none in a uuid).
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

/** Removes the tenant's bucket and every object in it; a missing bucket is fine. */
async function purgeBucket(tenantId: string, onBatch: (count: number) => void): Promise<{ objects: number; removed: boolean }> {
  const s3 = await s3Client();
  const bucket = tenantBucket(tenantId);
  if (!(await s3.bucketExists(bucket))) return { objects: 0, removed: false };
  let objects = 0;
  for (;;) {
    const names: string[] = [];
    for await (const item of s3.listObjectsV2(bucket, '', true)) {
      if (item.name) names.push(item.name);
      if (names.length >= 1000) break;
    }
    if (names.length === 0) break;
    await s3.removeObjects(bucket, names);
    objects += names.length;
    onBatch(names.length);
  }
  await s3.removeBucket(bucket);
  return { objects, removed: true };
}

/**
 * Removes a tenant for good: its Redis keys, its bucket, then (in one audited transaction)
 * its row, which cascades to every tenant table, and a platform audit entry counting what
 * went. The stores outside Postgres go first so that a failure leaves a tenant to retry.
 */
export async function purgeTenant(tenant: TenantRow, reason?: string): Promise<PurgeReport> {
  const bar = progress();
  const client = await adminPool().connect();
  let tables;
  try {
    tables = await listTenantTables(client);
  } finally {
    client.release();
  }
  const domains = (
    await adminPool().query<{ domain: string }>(`SELECT domain FROM tenant_domains WHERE tenant_id = $1`, [tenant.id])
  ).rows.map((row) => row.domain);

  bar.start(1, `purging ${tenant.slug}: redis`);
  const redisKeys = await purgeRedis(tenant.id, (count) => bar.increment(count));
  bar.start(1, `purging ${tenant.slug}: objects`);
  const bucket = await purgeBucket(tenant.id, (count) => bar.increment(count));

  bar.start(tables.length, `purging ${tenant.slug}: rows`);
  const rows = await inTransaction(
    async (tx) => {
      await findTenant(tenant.id, tx, true);
      const counts: Record<string, number> = {};
      for (const table of tables) {
        const { rows: counted } = await tx.query<{ count: number }>(
          `SELECT count(*)::int AS count FROM ${quoteIdent(table.schema)}.${quoteIdent(table.table)} WHERE ${quoteIdent(table.tenantColumn)} = $1`,
          [tenant.id],
        );
        counts[table.table] = counted[0]!.count;
        bar.increment();
      }
      await tx.query(`DELETE FROM tenants WHERE id = $1`, [tenant.id]);
      await tx.query(
        `INSERT INTO audit_log (tenant_id, action, target_type, target_id, after, reason)
         VALUES (NULL, 'tenants.purge', 'tenants', $1, $2::jsonb, nullif(current_setting('tenantry.reason', true), ''))`,
        [
          tenant.id,
          JSON.stringify({ slug: tenant.slug, rows: counts, redis_keys: redisKeys, objects: bucket.objects, bucket_removed: bucket.removed }),
        ],
      );
      return counts;
    },
    { reason: reason ?? 'tenant purge' },
  );
  bar.stop();
  await purgeTenantFromEdges(tenant, domains);
  return {
    tenant_id: tenant.id,
    slug: tenant.slug,
    rows,
    redis_keys: redisKeys,
    objects: bucket.objects,
    bucket_removed: bucket.removed,
  };
}

/** The retention job: purges every deleted tenant whose purge_after has passed (or only those of `only`). */
export async function purgeExpired(only: string[] = []): Promise<PurgeReport[]> {
  const ids = only.length === 0 ? null : await Promise.all(only.map(async (reference) => (await findTenant(reference)).id));
  const { rows } = await adminPool().query<{ id: string }>(
    `SELECT id FROM tenants WHERE status = 'deleted' AND purge_after <= now() AND ($1::uuid[] IS NULL OR id = ANY($1::uuid[]))
      ORDER BY purge_after`,
    [ids],
  );
  const reports: PurgeReport[] = [];
  for (const { id } of rows) {
    const tenant = await findTenant(id);
    reports.push(await purgeTenant(tenant, 'retention period over'));
  }
  return reports;
}
