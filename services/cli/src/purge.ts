import { listTenantTables } from '../../shared/src/db/isolation-lint.js';
import { quoteIdent } from '../../shared/src/ids.js';
import { adminPool, inTransaction, namespaceKit, namespaceStores } from './context.js';
import { findTenant, purgeTenantFromEdges, type TenantRow } from './tenants.js';
import { progress } from './progress.js';

export interface PurgeReport {
  tenant_id: string;
  slug: string;
  rows: Record<string, number>;
  redis_keys: number;
  /** Distinct object keys removed. */
  objects: number;
  /** Object versions and delete markers removed (more than objects in a versioned bucket). */
  object_versions: number;
  bucket_removed: boolean;
}

/**
 * Removes a tenant for good: its Redis ACL user and keys, every version of its objects and
 * its bucket (bucket layout) or everything under its prefix (prefix layout), then (in one
 * audited transaction) its row, which cascades to every tenant table, and a platform audit
 * entry counting what went. The stores outside Postgres go first so that a failure leaves a
 * tenant to retry.
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

  bar.start(1, `purging ${tenant.slug}: redis and objects`);
  const { removeTenantNamespaces } = await namespaceKit();
  const stores = await removeTenantNamespaces(await namespaceStores(), tenant.id, { onBatch: (_store, count) => bar.increment(count) });

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
          JSON.stringify({
            slug: tenant.slug,
            rows: counts,
            redis_keys: stores.redisKeys,
            objects: stores.objects,
            object_versions: stores.versions,
            bucket_removed: stores.bucketRemoved,
          }),
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
    redis_keys: stores.redisKeys,
    objects: stores.objects,
    object_versions: stores.versions,
    bucket_removed: stores.bucketRemoved,
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
