/**
 * A security review of the storage migration (1795900700000_storage): the definers' settings
 * and grants, and the storage limit against writers that do not run the way the storage
 * service does (another isolation level, several statements, writable CTEs).
 */
import pg from 'pg';
import { afterAll, describe, expect, test } from 'vitest';
import { hasuraSessionJson } from '../../services/shared/src/db/tenant-context.js';
import { withTenant } from '../../services/shared/src/db/tenant-context.js';
import { poolAs } from '../helpers/database.js';
import { committedBytes, insertFile, insertUpload, SHA, storageTenant, type StorageTenant } from './storage-kit.js';

const admin = poolAs('platform_admin');
const service = poolAs('app_service', 6);
const hasura = poolAs('hasura_app');
afterAll(async () => {
  await Promise.all([admin.end(), service.end(), hasura.end()]);
});

const asOwner = <T>(tenant: StorageTenant, work: (client: pg.PoolClient) => Promise<T>) =>
  withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerId, role: 'owner' }, work);

const STORAGE_DEFINERS = ['app.storage_bytes_committed(uuid)', 'app.enforce_storage_limits()', 'app.storage_uploads_due(interval,integer)', 'app.tenant_limits(uuid)', 'app.tenant_entitlements(uuid)', 'app.usage_sample(text,timestamp with time zone)'];

describe('the definers', () => {
  test('owned by app_definer, with the fixed search_path, and no EXECUTE for PUBLIC or hasura_app', async () => {
    for (const signature of STORAGE_DEFINERS) {
      const { rows } = await admin.query<{ definer: boolean; owner: string; config: string[] | null; public_execute: boolean; hasura_execute: boolean }>(
        `SELECT p.prosecdef AS definer, pg_get_userbyid(p.proowner) AS owner, p.proconfig AS config,
                has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute,
                has_function_privilege('hasura_app', p.oid, 'EXECUTE') AS hasura_execute
         FROM pg_proc p WHERE p.oid = $1::regprocedure`,
        [signature],
      );
      expect(rows[0], signature).toMatchObject({ definer: true, owner: 'app_definer', config: ['search_path=pg_catalog, public, pg_temp'], public_execute: false, hasura_execute: false });
    }
  });

  test("Hasura's role cannot sum another tenant's bytes, list the uploads due, or write files", async () => {
    const tenant = await storageTenant(admin, 'rv-h');
    const client = await hasura.connect();
    try {
      for (const statement of [
        `SELECT app.storage_bytes_committed('${tenant.tenantId}')`,
        "SELECT * FROM app.storage_uploads_due('0 seconds', 10)",
        `INSERT INTO files (tenant_id, bucket, name, size, content_type, sha256) VALUES ('${tenant.tenantId}', 'b', 'n', 1, 'text/plain', '${SHA}')`,
        `UPDATE files SET size = 0`,
        `DELETE FROM file_uploads`,
      ]) {
        await client.query('BEGIN');
        await client.query("SELECT set_config('hasura.user', $1, true)", [hasuraSessionJson({ tenantId: tenant.tenantId, userId: tenant.ownerId, role: 'owner' })]);
        await expect(client.query(statement), statement).rejects.toMatchObject({ code: '42501' });
        await client.query('ROLLBACK');
      }
    } finally {
      client.release();
    }
  });
});

describe('the storage limit against other ways of writing', () => {
  test('a writable CTE that deletes a file and inserts a larger one is held to the limit; one that frees room is taken', async () => {
    const tenant = await storageTenant(admin, 'rv-cte', { maxStorageBytes: 1_000 });
    const small = await insertFile(admin, { tenantId: tenant.tenantId, size: 400 });
    await insertFile(admin, { tenantId: tenant.tenantId, size: 400 });
    await expect(
      asOwner(tenant, (client) =>
        client.query(
          `WITH gone AS (DELETE FROM files WHERE id = $1 RETURNING 1)
           INSERT INTO files (tenant_id, bucket, name, size, content_type, sha256) SELECT $2, 'b', 'big.bin', 700, 'text/plain', $3 FROM gone`,
          [small, tenant.tenantId, SHA],
        ),
      ),
    ).rejects.toMatchObject({ code: '23514', constraint: 'files_storage_limit' });
    expect(await committedBytes(admin, tenant.tenantId)).toBe(800);
    await asOwner(tenant, (client) =>
      client.query(
        `WITH gone AS (DELETE FROM files WHERE id = $1 RETURNING 1)
         INSERT INTO files (tenant_id, bucket, name, size, content_type, sha256) SELECT $2, 'b', 'fits.bin', 600, 'text/plain', $3 FROM gone`,
        [small, tenant.tenantId, SHA],
      ),
    );
    expect(await committedBytes(admin, tenant.tenantId)).toBe(1_000);
  });

  test('an upload inserted as completed and flipped back to pending in the same transaction is counted', async () => {
    const tenant = await storageTenant(admin, 'rv-flip', { maxStorageBytes: 1_000 });
    await insertUpload(admin, { tenantId: tenant.tenantId, size: 900 });
    await expect(
      asOwner(tenant, async (client) => {
        const id = await insertUpload(client, { tenantId: tenant.tenantId, size: 500, status: 'completed' });
        await client.query("UPDATE file_uploads SET status = 'pending' WHERE id = $1", [id]);
      }),
    ).rejects.toMatchObject({ code: '23514', constraint: 'file_uploads_storage_limit' });
    expect(await committedBytes(admin, tenant.tenantId)).toBe(900);
  });

  test('a pending upload grown by UPDATE, and several uploads in one multi-row INSERT, are held to the limits', async () => {
    const tenant = await storageTenant(admin, 'rv-grow', { plan: 'free', maxStorageBytes: 1_000 });
    const id = await insertUpload(admin, { tenantId: tenant.tenantId, size: 10 });
    await expect(asOwner(tenant, (client) => client.query('UPDATE file_uploads SET size = 2000 WHERE id = $1', [id]))).rejects.toMatchObject({ code: '23514' });
    await expect(
      asOwner(tenant, (client) =>
        client.query(
          `INSERT INTO file_uploads (tenant_id, bucket, name, size, content_type, sha256, expires_at)
           SELECT $1, 'b', 'n' || g, 100, 'text/plain', $2, now() + interval '5 minutes' FROM generate_series(1, 10) g`,
          [tenant.tenantId, SHA],
        ),
      ),
    ).rejects.toMatchObject({ code: '23514', constraint: 'file_uploads_storage_limit' });
    expect(await committedBytes(admin, tenant.tenantId)).toBe(10);
  });
});

describe('the storage limit against an older snapshot', () => {
  // Seen failing before the isolation check: limit 1000, two uploads of 600 → 1200 committed.
  test('a writer in REPEATABLE READ whose snapshot predates a committed reservation is refused, and the limit holds', async () => {
    const tenant = await storageTenant(admin, 'rv-rr', { maxStorageBytes: 1_000 });
    const late = await service.connect();
    let refusal: unknown;
    try {
      await late.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await late.query("SELECT set_config('hasura.user', $1, true)", [hasuraSessionJson({ tenantId: tenant.tenantId, userId: tenant.ownerId, role: 'owner' })]);
      // The snapshot is taken here, before the other reservation commits.
      await late.query('SELECT count(*) FROM file_uploads');
      await asOwner(tenant, (client) => insertUpload(client, { tenantId: tenant.tenantId, size: 600 }));
      await insertUpload(late, { tenantId: tenant.tenantId, size: 600 }).catch((error: unknown) => (refusal = error));
      await late.query('ROLLBACK');
    } finally {
      late.release();
    }
    expect(refusal).toMatchObject({ code: '40001', message: expect.stringContaining('READ COMMITTED') });
    expect(await committedBytes(admin, tenant.tenantId)).toBe(600);
  });
});
