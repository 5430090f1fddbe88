/**
 * Migration 1795900700000_storage, beside the limits (storage-limits), names (storage-names)
 * and attacks (storage-attacks): the single-file limit of each plan and where it shows, the
 * reserved label, the role model, the stored-bytes sample, the sweeper's due uploads, the
 * namespace notices, and down.sql giving back exactly the schema it found.
 */
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { can } from '../../services/shared/src/permissions.js';
import { withTenant } from '../../services/shared/src/db/tenant-context.js';
import { lintTenantIsolation } from '../../services/shared/src/db/isolation-lint.js';
import { migrate, rollback } from '../../services/shared/src/db/migrations.js';
import { dbError, uniqueSlug } from '../fixtures/seed.js';
import { createScratchDatabase, poolAs, services, type ScratchDatabase } from '../helpers/database.js';
import { schemaSnapshot } from '../helpers/schema-snapshot.js';
import { insertFile, insertUpload, storageTenant } from './storage-kit.js';

const VERSION = '1795900700000';

const admin = poolAs('platform_admin');
const service = poolAs('app_service');
const hasura = poolAs('hasura_app');
afterAll(async () => {
  await Promise.all([admin.end(), service.end(), hasura.end()]);
});

describe('the single-file limit', () => {
  test('the plans carry it: 25 MiB, 100 MiB, 1 GiB, and none for enterprise', async () => {
    const { rows } = await admin.query<{ id: string; max_file_bytes: string | null }>(
      "SELECT id, max_file_bytes::text FROM plans WHERE id IN ('free', 'starter', 'pro', 'enterprise') ORDER BY sort_order",
    );
    expect(rows).toEqual([
      { id: 'free', max_file_bytes: '26214400' },
      { id: 'starter', max_file_bytes: '104857600' },
      { id: 'pro', max_file_bytes: '1073741824' },
      { id: 'enterprise', max_file_bytes: null },
    ]);
    expect(await dbError(admin.query("UPDATE plans SET max_file_bytes = 0 WHERE id = 'free'"))).toMatchObject({
      code: '23514',
      constraint: 'plans_max_file_bytes_positive',
    });
  });

  test("app.tenant_limits and app.tenant_entitlements answer it, the plan's, next to the limits they answered before", async () => {
    const tenant = await storageTenant(admin, 'sm-limits', { plan: 'starter', maxStorageBytes: 12_345 });
    const plan = await admin.query("SELECT max_users, max_api_requests_month, rate_limit_rps, max_file_bytes FROM plans WHERE id = 'starter'");
    const limits = await service.query('SELECT * FROM app.tenant_limits($1)', [tenant.tenantId]);
    expect(limits.rows[0]).toEqual({ ...plan.rows[0], max_storage_bytes: '12345' });
    expect(Object.keys(limits.rows[0]!)).toEqual(['max_users', 'max_storage_bytes', 'max_api_requests_month', 'rate_limit_rps', 'max_file_bytes']);
    expect(limits.rows[0]!.max_file_bytes).toBe('104857600');
    const entitlements = await service.query('SELECT max_storage_bytes, max_file_bytes, plan_id FROM app.tenant_entitlements($1)', [tenant.tenantId]);
    expect(entitlements.rows[0]).toEqual({ max_storage_bytes: '12345', max_file_bytes: '104857600', plan_id: 'starter' });
  });

  test("Hasura's role reads it with the plan (the registry's plan columns)", async () => {
    const { rows } = await hasura.query<{ max_file_bytes: string }>("SELECT max_file_bytes::text FROM plans WHERE id = 'free'");
    expect(rows).toEqual([{ max_file_bytes: '26214400' }]);
  });
});

test('s3 is a reserved label: the edge serves S3 there', async () => {
  const { rows } = await service.query<{ reserved: boolean; storage: boolean; ordinary: boolean }>(
    "SELECT app.is_reserved_slug('s3') AS reserved, app.is_reserved_slug('storage') AS storage, app.is_reserved_slug('s3-shop') AS ordinary",
  );
  expect(rows[0]).toEqual({ reserved: true, storage: true, ordinary: false });
});

describe('the role model', () => {
  const cases: Array<[string, string, boolean]> = [
    ['owner', 'storage:credentials', true],
    ['admin', 'storage:credentials', true],
    ['member', 'storage:credentials', false],
    ['guest', 'storage:credentials', false],
    ['admin', 'files:write', true],
    ['member', 'files:write', true],
    ['guest', 'files:write', false],
    ['guest', 'files:read', true],
    ['member', 'files:delete', false],
  ];
  test.each(cases)('%s may %s: %s, in SQL and TypeScript', async (role, permission, allowed) => {
    const { rows } = await service.query<{ allowed: boolean }>('SELECT app.grants_cover(app.role_permissions($1::member_role), $2) AS allowed', [role, permission]);
    expect(rows[0]!.allowed).toBe(allowed);
    expect(can({ role: role as 'owner' }, permission)).toBe(allowed);
  });
});

/** An hour far from now and from other suites' rows. */
const HOUR = new Date(Date.UTC(2030, 6, 14, 9, 0, 0));

describe("app.usage_sample('storage.bytes')", () => {
  test('samples the bytes of each tenant’s files, not its pending uploads, and again with the latest figure', async () => {
    const tenant = await storageTenant(admin, 'sm-sample');
    const empty = await storageTenant(admin, 'sm-sample-empty');
    await insertFile(admin, { tenantId: tenant.tenantId, size: 100 });
    await insertFile(admin, { tenantId: tenant.tenantId, size: 250 });
    await insertUpload(admin, { tenantId: tenant.tenantId, size: 5_000 });
    const sampled = async (tenantId: string) =>
      (
        await admin.query<{ quantity: string }>(
          "SELECT quantity::text FROM tenant_usage WHERE tenant_id = $1 AND metric = 'storage.bytes' AND period_start = $2",
          [tenantId, HOUR],
        )
      ).rows.map((row) => Number(row.quantity));

    await service.query("SELECT app.usage_sample('storage.bytes', $1)", [new Date(HOUR.getTime() + 1_234)]);
    expect(await sampled(tenant.tenantId)).toEqual([350]);
    expect(await sampled(empty.tenantId)).toEqual([0]);

    await insertFile(admin, { tenantId: tenant.tenantId, size: 50 });
    await service.query("SELECT app.usage_sample('storage.bytes', $1)", [HOUR]);
    expect(await sampled(tenant.tenantId)).toEqual([400]);
    // users.count is sampled as before, beside it.
    await service.query("SELECT app.usage_sample('users.count', $1)", [HOUR]);
    const users = await admin.query("SELECT quantity FROM tenant_usage WHERE tenant_id = $1 AND metric = 'users.count' AND period_start = $2", [
      tenant.tenantId,
      HOUR,
    ]);
    expect(users.rows).toEqual([{ quantity: '2' }]);
    expect(await dbError(service.query("SELECT app.usage_sample('storage.objects', $1)", [HOUR]))).toMatchObject({ code: '22023' });
  });
});

describe('app.storage_uploads_due', () => {
  test('unsettled uploads past expiry and grace, oldest first, within the limit, with their status and file; not settled ones, nor a deleted tenant’s', async () => {
    const tenant = await storageTenant(admin, 'sm-due');
    const deleted = await storageTenant(admin, 'sm-due-deleted');
    // Far in the past, so they come before other suites' uploads in the shared database.
    const at = (minutes: number) => new Date(Date.UTC(2000, 0, 1, 0, minutes));
    const second = await insertUpload(admin, { tenantId: tenant.tenantId, name: 'second', size: 1, expiresAt: at(2) });
    const first = await insertUpload(admin, { tenantId: tenant.tenantId, name: 'first', size: 1, expiresAt: at(1) });
    // A refused upload, and a completed one whose file is gone, may have been replayed; an expired one (imported) is unsettled.
    const refused = await insertUpload(admin, { tenantId: tenant.tenantId, name: 'refused', size: 1, expiresAt: at(0), status: 'refused' });
    const orphaned = await insertUpload(admin, { tenantId: tenant.tenantId, name: 'orphaned', size: 1, expiresAt: at(0), status: 'completed' });
    const expired = await insertUpload(admin, { tenantId: tenant.tenantId, name: 'expired', size: 1, expiresAt: at(0), status: 'expired' });
    const settled = await insertUpload(admin, { tenantId: tenant.tenantId, name: 'settled', size: 1, expiresAt: at(0), status: 'refused' });
    await admin.query('UPDATE file_uploads SET settled_at = now() WHERE id = $1', [settled]);
    const fileId = await insertFile(admin, { tenantId: tenant.tenantId, name: 'kept', size: 1 });
    const kept = await insertUpload(admin, { tenantId: tenant.tenantId, name: 'kept', size: 1, expiresAt: at(3), status: 'completed' });
    await admin.query('UPDATE file_uploads SET file_id = $2 WHERE id = $1', [kept, fileId]);
    const fresh = await insertUpload(admin, { tenantId: tenant.tenantId, name: 'fresh', size: 1, expiresAt: new Date(Date.now() - 60_000) });
    await insertUpload(admin, { tenantId: deleted.tenantId, size: 1, expiresAt: at(0) });
    await admin.query("UPDATE tenants SET status = 'deleted' WHERE id = $1", [deleted.tenantId]);

    const due = async (grace: string, limit = 100_000) =>
      (
        await service.query<{ id: string; tenant_id: string; bucket: string; name: string; status: string; file_id: string | null }>(
          'SELECT * FROM app.storage_uploads_due($1::interval, $2) WHERE tenant_id IN ($3, $4)',
          [grace, limit, tenant.tenantId, deleted.tenantId],
        )
      ).rows;
    const row = (id: string, name: string, status: string, file: string | null = null) => ({ id, tenant_id: tenant.tenantId, bucket: 'uploads', name, status, file_id: file });
    const listed = await due('5 minutes');
    // Those at the same expiry come in id order.
    const sameExpiry = [row(refused, 'refused', 'refused'), row(orphaned, 'orphaned', 'completed'), row(expired, 'expired', 'expired')];
    expect(listed.slice(0, 3)).toEqual(sameExpiry.sort((x, y) => x.id.localeCompare(y.id)));
    expect(listed.slice(3)).toEqual([row(first, 'first', 'pending'), row(second, 'second', 'pending'), row(kept, 'kept', 'completed', fileId)]);
    expect((await due('0 seconds')).map((one) => one.id).slice(3)).toEqual([first, second, kept, fresh]);
    const limited = await service.query('SELECT * FROM app.storage_uploads_due($1::interval, 1)', ['0 seconds']);
    expect(limited.rowCount).toBe(1);

    // The sweeper then settles them in the tenant's context, and they are due no more.
    await withTenant(service, { tenantId: tenant.tenantId, role: 'owner' }, async (client) => {
      await client.query("UPDATE file_uploads SET status = 'expired', settled_at = now() WHERE id = $1", [first]);
      await client.query('UPDATE file_uploads SET settled_at = now() WHERE id = ANY($1)', [[refused, expired, kept]]);
    });
    expect((await due('5 minutes')).map((one) => one.id)).toEqual([orphaned, second]);
  });
});

describe('namespace notices', () => {
  let listener: pg.Client;
  const heard: string[] = [];
  beforeAll(async () => {
    listener = new pg.Client({ connectionString: services().urls.app_service });
    await listener.connect();
    listener.on('notification', (message) => {
      if (message.channel === 'tenant_namespaces' && message.payload) heard.push(message.payload);
    });
    await listener.query('LISTEN tenant_namespaces');
  });
  afterAll(() => listener?.end());

  /** Waits until `count` notices for the tenant have arrived (other suites' tenants notify too). */
  async function noticesFor(tenantId: string, count: number): Promise<number> {
    const deadline = Date.now() + 5_000;
    while (heard.filter((id) => id === tenantId).length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    return heard.filter((id) => id === tenantId).length;
  }

  test('a tenant created, its status changed and the tenant deleted each notify its id; other changes and a status set to itself do not', async () => {
    const { rows } = await admin.query<{ id: string }>("INSERT INTO tenants (slug, name) VALUES ($1, 'Notified') RETURNING id", [uniqueSlug('sm-notify')]);
    const tenantId = rows[0]!.id;
    expect(await noticesFor(tenantId, 1)).toBe(1);

    await admin.query("UPDATE tenants SET name = 'Renamed', settings = '{\"a\": 1}' WHERE id = $1", [tenantId]);
    await admin.query('UPDATE tenants SET status = status WHERE id = $1', [tenantId]);
    await admin.query("UPDATE tenants SET status = 'suspended', suspension_reason = 'test' WHERE id = $1", [tenantId]);
    // Notices are delivered in commit order: the rename and the no-op, had they notified, come first.
    expect(await noticesFor(tenantId, 2)).toBe(2);

    // Only on commit: a rolled-back change says nothing.
    const client = await admin.connect();
    try {
      await client.query('BEGIN');
      await client.query("UPDATE tenants SET status = 'active' WHERE id = $1", [tenantId]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await admin.query("UPDATE tenants SET status = 'active' WHERE id = $1", [tenantId]);
    expect(await noticesFor(tenantId, 3)).toBe(3);

    await admin.query('DELETE FROM tenants WHERE id = $1', [tenantId]);
    expect(await noticesFor(tenantId, 4)).toBe(4);
    expect(heard.filter((id) => id === tenantId)).toHaveLength(4);
  });
});

describe('down and up again', () => {
  let scratch: ScratchDatabase;
  let before: ScratchDatabase;
  let directory: string;
  let previous: string;
  let client: pg.Client;
  beforeAll(async () => {
    directory = mkdtempSync(path.join(os.tmpdir(), 'tenantry-migrations-'));
    previous = mkdtempSync(path.join(os.tmpdir(), 'tenantry-migrations-'));
    for (const entry of readdirSync(services().migrationsDir)) {
      const version = entry.split('_')[0]!;
      if (version <= VERSION) cpSync(path.join(services().migrationsDir, entry), path.join(directory, entry), { recursive: true });
      if (version < VERSION) cpSync(path.join(services().migrationsDir, entry), path.join(previous, entry), { recursive: true });
    }
    // One after the other: bootstrapping alters the shared roles, which two at once would race on.
    scratch = await createScratchDatabase({ migrated: false });
    before = await createScratchDatabase({ migrated: false });
    await Promise.all([
      migrate({ databaseUrl: scratch.url('tenantry_owner'), directory }),
      migrate({ databaseUrl: before.url('tenantry_owner'), directory: previous }),
    ]);
    client = new pg.Client({ connectionString: scratch.url('tenantry_owner') });
    await client.connect();
  }, 120_000);
  afterAll(async () => {
    await client?.end();
    await Promise.all([scratch?.drop(), before?.drop()]);
    for (const folder of [directory, previous]) if (folder) rmSync(folder, { recursive: true, force: true });
  });

  test('down gives back exactly the schema and privileges of the migration before; up applies again to the same result', async () => {
    const migrated = await schemaSnapshot(client);
    expect(migrated.columns.some((line) => line.startsWith('files.'))).toBe(true);
    const beforeClient = new pg.Client({ connectionString: before.url('tenantry_owner') });
    await beforeClient.connect();
    const found = await schemaSnapshot(beforeClient).finally(() => beforeClient.end());

    await rollback({ databaseUrl: scratch.url('tenantry_owner'), directory, steps: 1 });
    expect(await schemaSnapshot(client)).toEqual(found);
    await migrate({ databaseUrl: scratch.url('tenantry_owner'), directory });
    expect(await schemaSnapshot(client)).toEqual(migrated);
    expect(await lintTenantIsolation(client)).toEqual([]);
  });
});
