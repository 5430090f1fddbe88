/**
 * Attacks on the storage tables and definers (migration 1795900700000_storage): Hasura's
 * role cannot write files, a tenant cannot reach another's rows, lock or limits, a foreign
 * key cannot be used to probe another tenant's file ids, a temporary table cannot stand in
 * for what the definers read, and the sweeper's definer is not Hasura's to call.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hasuraSessionJson, withTenant, type TenantContext } from '../../services/shared/src/db/tenant-context.js';
import { dbError, type DbError } from '../fixtures/seed.js';
import { createScratchDatabase, poolAs, type ScratchDatabase } from '../helpers/database.js';
import { insertFile, insertUpload, SHA, storageTenant, type StorageTenant } from './storage-kit.js';

const INSUFFICIENT_PRIVILEGE = '42501';
const RLS_REFUSAL = /row-level security/;

const admin = poolAs('platform_admin');
const service = poolAs('app_service');
const hasura = poolAs('hasura_app');
afterAll(async () => {
  await Promise.all([admin.end(), service.end(), hasura.end()]);
});

let A: StorageTenant;
let B: StorageTenant;
let fileOfA: string;
let fileOfB: string;
let uploadOfB: string;
beforeAll(async () => {
  [A, B] = await Promise.all([storageTenant(admin, 'sa-a', { maxStorageBytes: 1_000 }), storageTenant(admin, 'sa-b', { maxStorageBytes: 1_000 })]);
  fileOfA = await insertFile(admin, { tenantId: A.tenantId, name: 'a.txt', size: 10 });
  fileOfB = await insertFile(admin, { tenantId: B.tenantId, name: 'b.txt', size: 990 });
  uploadOfB = await insertUpload(admin, { tenantId: B.tenantId, size: 0 });
});

/** A transaction as hasura_app, the session set exactly as Hasura sets it; always rolled back. */
async function asHasura<T>(context: TenantContext, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await hasura.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL "hasura.user" = ${pg.escapeLiteral(hasuraSessionJson(context))}`);
    return await work(client);
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

const snapshot = async (tenant: StorageTenant) =>
  (
    await admin.query<{ rows: string }>(
      `SELECT (SELECT coalesce(jsonb_agg(f ORDER BY f.id), '[]') FROM files f WHERE f.tenant_id = $1)::text
              || (SELECT coalesce(jsonb_agg(u ORDER BY u.id), '[]') FROM file_uploads u WHERE u.tenant_id = $1)::text AS rows`,
      [tenant.tenantId],
    )
  ).rows[0]!.rows;

describe('hasura_app reads files and never writes them', () => {
  for (const role of ['owner', 'member'] as const) {
    test(`as ${role}: INSERT, UPDATE and DELETE on files and file_uploads are denied by privilege`, async () => {
      const before = await snapshot(A);
      const context = { tenantId: A.tenantId, userId: role === 'owner' ? A.ownerId : A.memberId, role };
      const statements: Array<[string, unknown[]]> = [
        [`INSERT INTO files (tenant_id, bucket, name, size, content_type, sha256) VALUES ($1, 'docs', 'x.txt', 1, 'text/plain', $2)`, [A.tenantId, SHA]],
        [`INSERT INTO file_uploads (tenant_id, bucket, name, size, content_type, sha256, expires_at) VALUES ($1, 'docs', 'x.txt', 1, 'text/plain', $2, now())`, [A.tenantId, SHA]],
        ['UPDATE files SET size = 0 WHERE tenant_id = $1', [A.tenantId]],
        ["UPDATE file_uploads SET status = 'pending' WHERE tenant_id = $1", [A.tenantId]],
        ['DELETE FROM files WHERE tenant_id = $1', [A.tenantId]],
        ['DELETE FROM file_uploads WHERE tenant_id = $1', [A.tenantId]],
      ];
      for (const [sql, params] of statements) {
        const error = await dbError(asHasura(context, (client) => client.query(sql, params)));
        expect(error?.code, sql).toBe(INSUFFICIENT_PRIVILEGE);
        expect(error?.message, sql).toMatch(/permission denied for table/);
      }
      expect(await snapshot(A)).toBe(before);
    });
  }

  test("with a tenant's session: SELECT sees that tenant's files and uploads only", async () => {
    const seen = await asHasura({ tenantId: A.tenantId, userId: A.memberId, role: 'member' }, async (client) => {
      const files = await client.query<{ tenant_id: string }>('SELECT tenant_id FROM files WHERE tenant_id IN ($1, $2)', [A.tenantId, B.tenantId]);
      const uploads = await client.query<{ id: string }>('SELECT id FROM file_uploads WHERE id = $1', [uploadOfB]);
      return { files: files.rows.map((row) => row.tenant_id), uploads: uploads.rowCount };
    });
    expect(seen).toEqual({ files: [A.tenantId], uploads: 0 });
  });
});

describe("app_service in tenant A's context", () => {
  const asA = <T>(work: (client: pg.PoolClient) => Promise<T>) => withTenant(service, { tenantId: A.tenantId, userId: A.ownerId, role: 'owner' }, work);

  test("inserting B's upload or file is refused by row-level security, even when it would break B's limit: neither B's limit nor its lock shows", async () => {
    const before = await snapshot(B);
    for (const attempt of [
      (client: pg.PoolClient) => insertUpload(client, { tenantId: B.tenantId, size: 10 ** 12 }),
      (client: pg.PoolClient) => insertFile(client, { tenantId: B.tenantId, size: 10 ** 12 }),
    ]) {
      const error = (await dbError(asA(attempt))) as DbError;
      expect(error.code, error.message).toBe(INSUFFICIENT_PRIVILEGE);
      expect(error.message).toMatch(RLS_REFUSAL);
      expect(error.message).not.toContain('1000');
    }
    // While B's lock is held by a writer of B, A's refused attempt does not wait for it.
    const holder = await service.connect();
    try {
      await holder.query('BEGIN');
      await holder.query("SELECT set_config('hasura.user', $1, true)", [hasuraSessionJson({ tenantId: B.tenantId, role: 'owner' })]);
      await insertUpload(holder, { tenantId: B.tenantId, size: 1 });
      const started = Date.now();
      await asA((client) => client.query("SET LOCAL lock_timeout = '2s'").then(() => dbError(insertUpload(client, { tenantId: B.tenantId, size: 1 })))).then(
        (error) => expect(error?.code).toBe(INSUFFICIENT_PRIVILEGE),
      );
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(await snapshot(B)).toBe(before);
  });

  test("B's rows are invisible, and UPDATE or DELETE of them touches nothing", async () => {
    const before = await snapshot(B);
    const outcome = await asA(async (client) => ({
      seen: (await client.query('SELECT 1 FROM files WHERE tenant_id = $1 UNION ALL SELECT 1 FROM file_uploads WHERE tenant_id = $1', [B.tenantId])).rowCount,
      updated: (await client.query("UPDATE file_uploads SET status = 'expired' WHERE id = $1", [uploadOfB])).rowCount,
      deleted: (await client.query('DELETE FROM files WHERE id = $1', [fileOfB])).rowCount,
    }));
    expect(outcome).toEqual({ seen: 0, updated: 0, deleted: 0 });
    expect(await snapshot(B)).toBe(before);
  });

  test("an upload cannot point at B's file: the same refusal as for a file that does not exist, so no id can be probed", async () => {
    const link = (fileId: string) =>
      asA(async (client) => {
        const uploadId = await insertUpload(client, { tenantId: A.tenantId, size: 1, status: 'completed' });
        await client.query('UPDATE file_uploads SET file_id = $2 WHERE id = $1', [uploadId, fileId]);
      });
    const foreign = await dbError(link(fileOfB));
    const missing = await dbError(link(randomUUID()));
    expect({ code: foreign?.code, constraint: foreign?.constraint }).toEqual({ code: '23503', constraint: 'file_uploads_file_fkey' });
    expect({ code: missing?.code, constraint: missing?.constraint }).toEqual({ code: '23503', constraint: 'file_uploads_file_fkey' });
    await link(fileOfA);
  });
});

describe('app.storage_uploads_due and app.storage_bytes_committed', () => {
  test.each([
    ['app.storage_uploads_due', "SELECT * FROM app.storage_uploads_due('0 seconds', 10)"],
    ['app.storage_bytes_committed', `SELECT app.storage_bytes_committed('${randomUUID()}')`],
  ])('%s: hasura_app may not call it, with or without a session', async (_name, sql) => {
    const bare = await dbError(hasura.query(sql));
    expect(bare?.code).toBe(INSUFFICIENT_PRIVILEGE);
    expect(bare?.message).toMatch(/permission denied for function/);
    const inSession = await dbError(asHasura({ tenantId: A.tenantId, userId: A.ownerId, role: 'owner' }, (client) => client.query(sql)));
    expect(inSession?.code).toBe(INSUFFICIENT_PRIVILEGE);
  });

  test('the trigger function is nobody’s to call directly', async () => {
    for (const pool of [service, hasura, admin]) {
      const { rows } = await pool.query<{ can: boolean }>("SELECT has_function_privilege('app.enforce_storage_limits()', 'EXECUTE') AS can");
      expect(rows[0]!.can).toBe(false);
    }
  });
});

describe('temporary tables cannot stand in for what the definers read', () => {
  let scratch: ScratchDatabase;
  let scratchAdmin: pg.Pool;
  let attacker: pg.Client;
  let tenant: StorageTenant;
  beforeAll(async () => {
    scratch = await createScratchDatabase({ migrated: true });
    await scratch.grantTemporary(['app_service']);
    scratchAdmin = new pg.Pool({ connectionString: scratch.url('platform_admin'), max: 2 });
    tenant = await storageTenant(scratchAdmin, 'sa-shadow', { maxStorageBytes: 1_000 });
    await insertFile(scratchAdmin, { tenantId: tenant.tenantId, size: 600 });
    await insertUpload(scratchAdmin, { tenantId: tenant.tenantId, size: 300, expiresAt: new Date('2001-01-01T00:00:00Z') });
    attacker = new pg.Client({ connectionString: scratch.url('app_service') });
    await attacker.connect();
  }, 120_000);
  afterAll(async () => {
    await attacker?.end();
    await scratchAdmin?.end();
    await scratch?.drop();
  });

  test('files, file_uploads, tenants and plans of pg_temp change neither the committed bytes, the limits, nor the uploads due', async () => {
    for (const statement of [
      'CREATE TEMP TABLE files (tenant_id uuid, size bigint)',
      `INSERT INTO pg_temp.files VALUES ('${tenant.tenantId}', -600)`,
      'CREATE TEMP TABLE file_uploads (id uuid, tenant_id uuid, bucket text, name text, size bigint, status text, expires_at timestamptz)',
      `INSERT INTO pg_temp.file_uploads VALUES ('${randomUUID()}', '${tenant.tenantId}', 'fake', 'fake', -300, 'pending', '2000-01-01')`,
      'CREATE TEMP TABLE tenants (id uuid, plan_id text, status text, max_storage_bytes bigint, max_users integer, max_api_requests_month bigint)',
      `INSERT INTO pg_temp.tenants VALUES ('${tenant.tenantId}', 'enterprise', 'active', NULL, NULL, NULL)`,
      'CREATE TEMP TABLE plans (id text, max_storage_bytes bigint, max_file_bytes bigint, max_users integer, max_api_requests_month bigint, rate_limit_rps integer)',
      "INSERT INTO pg_temp.plans VALUES ('pro', NULL, NULL, NULL, NULL, 1)",
      'GRANT ALL ON pg_temp.files, pg_temp.file_uploads, pg_temp.tenants, pg_temp.plans TO PUBLIC',
    ]) {
      await attacker.query(statement);
    }
    // The attacker's own unqualified reads do see the stand-ins: the shadowing is real.
    const shadowed = await attacker.query<{ n: string }>('SELECT sum(size)::text AS n FROM files');
    expect(shadowed.rows[0]!.n).toBe('-600');

    const committed = await attacker.query<{ n: string }>('SELECT app.storage_bytes_committed($1)::text AS n', [tenant.tenantId]);
    expect(committed.rows[0]!.n).toBe('900');
    const limits = await attacker.query<{ max_storage_bytes: string; max_file_bytes: string }>(
      'SELECT max_storage_bytes::text, max_file_bytes::text FROM app.tenant_limits($1)',
      [tenant.tenantId],
    );
    expect(limits.rows[0]).toEqual({ max_storage_bytes: '1000', max_file_bytes: '1073741824' });

    const due = await attacker.query<{ bucket: string }>("SELECT bucket FROM app.storage_uploads_due('0 seconds', 1000) WHERE tenant_id = $1", [tenant.tenantId]);
    expect(due.rows).toEqual([{ bucket: 'uploads' }]);

    // And the limit trigger still counts the real rows: 900 + 101 is over.
    await attacker.query('BEGIN');
    await attacker.query("SELECT set_config('hasura.user', $1, true)", [hasuraSessionJson({ tenantId: tenant.tenantId, role: 'owner' })]);
    const over = await dbError(attacker.query(
      `INSERT INTO public.file_uploads (tenant_id, bucket, name, size, content_type, sha256, expires_at)
       VALUES ($1, 'docs', 'over.bin', 101, 'application/octet-stream', $2, now() + interval '1 hour')`,
      [tenant.tenantId, SHA],
    ));
    await attacker.query('ROLLBACK');
    expect({ code: over?.code, constraint: over?.constraint }).toEqual({ code: '23514', constraint: 'file_uploads_storage_limit' });
  });
});
