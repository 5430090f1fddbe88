/**
 * Migration 1795900600000_quotas: who may call the usage definers and what they do, that a
 * temporary table cannot stand in for the tables they read, and that down.sql gives back
 * the schema and privileges it found (up applies again on top).
 */
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { withTenant } from '../../services/shared/src/db/tenant-context.js';
import { lintTenantIsolation } from '../../services/shared/src/db/isolation-lint.js';
import { migrate, rollback } from '../../services/shared/src/db/migrations.js';
import { createUsers, dbError, seedTenant, type SeededTenant } from '../fixtures/seed.js';
import { createScratchDatabase, poolAs, services, type ScratchDatabase } from '../helpers/database.js';
import { schemaSnapshot } from '../helpers/schema-snapshot.js';

const VERSION = '1795900600000';
const DEFINERS = [
  'app.usage_add(uuid[],text[],timestamp with time zone[],bigint[])',
  'app.usage_sample(text,timestamp with time zone)',
  'app.quota_notices_due(date,uuid[])',
];

let admin: pg.Pool;
let service: pg.Pool;
let owner: pg.Pool;
beforeAll(() => {
  admin = poolAs('platform_admin');
  service = poolAs('app_service');
  owner = poolAs('tenantry_owner', 2);
});
afterAll(async () => {
  await Promise.all([admin.end(), service.end(), owner.end()]);
});

/** A month far from now and from other suites' rows (tests of the shared database run side by side). */
const MONTH = '2029-04-01';
const hourIn = (day: number, hour: number) => new Date(Date.UTC(2029, 3, day, hour, 0, 0));

async function usageOf(tenantId: string, metric = 'api.requests'): Promise<Array<[string, number]>> {
  const { rows } = await admin.query<{ period_start: Date; quantity: string }>(
    'SELECT period_start, quantity::text FROM tenant_usage WHERE tenant_id = $1 AND metric = $2 AND period_start >= $3 ORDER BY period_start',
    [tenantId, metric, hourIn(1, 0)],
  );
  return rows.map((row) => [row.period_start.toISOString(), Number(row.quantity)]);
}

describe('the usage definers', () => {
  test('are owned by app_definer, pin their search_path, and only app_service and platform_admin may call them', async () => {
    const { rows } = await owner.query<{ name: string; owner: string; definer: boolean; config: string[]; callers: string[] }>(
      `SELECT p.oid::regprocedure::text AS name, pg_get_userbyid(p.proowner) AS owner, p.prosecdef AS definer, p.proconfig AS config,
              ARRAY(SELECT r FROM unnest($2::text[]) AS r WHERE has_function_privilege(r, p.oid, 'EXECUTE') ORDER BY r) AS callers
         FROM pg_proc p WHERE p.oid::regprocedure::text = ANY ($1::text[]) ORDER BY 1`,
      [DEFINERS, ['hasura_app', 'app_service', 'platform_admin']],
    );
    expect(rows.map((row) => row.name).sort()).toEqual([...DEFINERS].sort());
    for (const row of rows) {
      expect(row).toMatchObject({ owner: 'app_definer', definer: true, config: ['search_path=pg_catalog, public, pg_temp'], callers: ['app_service', 'platform_admin'] });
    }
    const publicGrant = await owner.query<{ granted: boolean }>(
      `SELECT bool_or(acl.grantee = 0) AS granted FROM pg_proc p, aclexplode(p.proacl) AS acl WHERE p.oid::regprocedure::text = ANY ($1::text[])`,
      [DEFINERS],
    );
    expect(publicGrant.rows[0]!.granted).toBe(false);
  });

  test('hasura_app may not call them', async () => {
    const hasura = poolAs('hasura_app', 1);
    try {
      const refused = await dbError(hasura.query(`SELECT app.quota_notices_due('${MONTH}')`));
      expect(refused?.code).toBe('42501');
    } finally {
      await hasura.end();
    }
  });

  test('usage_add sums per tenant, metric and hour (truncated in UTC), accumulates across calls, skips unknown tenants', async () => {
    const tenant = await seedTenant(admin, 'quota-usage-add');
    const unknown = '00000000-0000-4000-8000-000000000000';
    const added = await service.query<{ rows: number }>('SELECT app.usage_add($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[]) AS rows', [
      [tenant.tenantId, tenant.tenantId, tenant.tenantId, unknown],
      ['api.requests', 'api.requests', 'api.requests', 'api.requests'],
      [new Date(hourIn(2, 5).getTime() + 59 * 60_000), hourIn(2, 5), hourIn(2, 6), hourIn(2, 5)],
      [3, 4, 5, 100],
    ]);
    expect(added.rows[0]!.rows).toBe(2);
    await service.query('SELECT app.usage_add($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[])', [[tenant.tenantId], ['api.requests'], [hourIn(2, 5)], [10]]);
    expect(await usageOf(tenant.tenantId)).toEqual([
      [hourIn(2, 5).toISOString(), 17],
      [hourIn(2, 6).toISOString(), 5],
    ]);
  });

  test('usage_sample sets the member count of every tenant for the hour, again with the latest count', async () => {
    const tenant = await seedTenant(admin, 'quota-usage-sample');
    await service.query("SELECT app.usage_sample('users.count', $1)", [new Date(hourIn(3, 8).getTime() + 1_234)]);
    expect(await usageOf(tenant.tenantId, 'users.count')).toEqual([[hourIn(3, 8).toISOString(), 2]]);
    const [extra] = await createUsers(admin, 'quota-sample', 1);
    await admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'member')", [tenant.tenantId, extra]);
    await service.query("SELECT app.usage_sample('users.count', $1)", [hourIn(3, 8)]);
    expect(await usageOf(tenant.tenantId, 'users.count')).toEqual([[hourIn(3, 8).toISOString(), 3]]);
    const refused = await dbError(service.query("SELECT app.usage_sample('api.requests', $1)", [hourIn(3, 8)]));
    expect(refused?.code).toBe('22023');
  });

  test("quota_notices_due names each threshold crossed in the month, until its notice is recorded; never an unlimited tenant's", async () => {
    const limited = await seedTenant(admin, 'quota-due');
    const unlimited = await seedTenant(admin, 'quota-due-unlimited');
    await admin.query('UPDATE tenants SET max_api_requests_month = 100 WHERE id = $1', [limited.tenantId]);
    await admin.query('UPDATE tenants SET plan_id = $2, max_api_requests_month = NULL WHERE id = $1', [unlimited.tenantId, 'enterprise']);
    const due = async (tenantId: string) =>
      (await service.query<{ threshold_percent: number; used: string; quota: string }>(
        'SELECT threshold_percent, used::text, quota::text FROM app.quota_notices_due($1) WHERE tenant_id = $2 ORDER BY 1',
        [MONTH, tenantId],
      )).rows.map((row) => [row.threshold_percent, Number(row.used), Number(row.quota)]);
    const add = (tenantId: string, at: Date, quantity: number) =>
      service.query('SELECT app.usage_add($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[])', [[tenantId], ['api.requests'], [at], [quantity]]);

    // March's last hour and May's first are not April's.
    await add(limited.tenantId, new Date(Date.UTC(2029, 2, 31, 23)), 500);
    await add(limited.tenantId, new Date(Date.UTC(2029, 4, 1, 0)), 500);
    await add(limited.tenantId, hourIn(1, 0), 79);
    expect(await due(limited.tenantId)).toEqual([]);
    await add(limited.tenantId, hourIn(30, 23), 1);
    expect(await due(limited.tenantId)).toEqual([[80, 80, 100]]);

    await withTenant(service, { tenantId: limited.tenantId, role: 'billing' }, (client) =>
      client.query("INSERT INTO quota_notices (tenant_id, metric, month, threshold_percent, used, quota) VALUES ($1, 'api.requests', $2, 80, 80, 100)", [limited.tenantId, MONTH]),
    );
    expect(await due(limited.tenantId)).toEqual([]);
    await add(limited.tenantId, hourIn(15, 12), 20);
    expect(await due(limited.tenantId)).toEqual([[100, 100, 100]]);

    const { rows: plan } = await admin.query<{ max_api_requests_month: string | null }>("SELECT max_api_requests_month FROM plans WHERE id = 'enterprise'");
    if (plan[0]!.max_api_requests_month === null) {
      await add(unlimited.tenantId, hourIn(2, 0), 10_000_000);
      expect(await due(unlimited.tenantId)).toEqual([]);
    }
  });
});

describe('quota_notices', () => {
  let a: SeededTenant;
  let b: SeededTenant;
  beforeAll(async () => {
    a = await seedTenant(admin, 'notices-a');
    b = await seedTenant(admin, 'notices-b');
  });

  test('app_service records and reads notices of the session tenant only; one per month and threshold', async () => {
    const insert = (client: pg.PoolClient, tenantId: string) =>
      client.query("INSERT INTO quota_notices (tenant_id, metric, month, threshold_percent, used, quota) VALUES ($1, 'api.requests', $2, 80, 8, 10)", [tenantId, MONTH]);
    await withTenant(service, { tenantId: a.tenantId }, (client) => insert(client, a.tenantId));
    const duplicate = await dbError(withTenant(service, { tenantId: a.tenantId }, (client) => insert(client, a.tenantId)));
    expect(duplicate?.code).toBe('23505');
    const crossTenant = await dbError(withTenant(service, { tenantId: a.tenantId }, (client) => insert(client, b.tenantId)));
    expect(crossTenant?.code).toBe('42501');
    const seen = await withTenant(service, { tenantId: b.tenantId }, (client) => client.query('SELECT tenant_id FROM quota_notices'));
    expect(seen.rows.filter((row: { tenant_id: string }) => row.tenant_id === a.tenantId)).toEqual([]);
    // The month is a month's first day, the threshold 80 or 100.
    for (const values of [[a.tenantId, '2029-04-02', 100], [a.tenantId, MONTH, 90]]) {
      const refused = await dbError(
        withTenant(service, { tenantId: a.tenantId }, (client) =>
          client.query("INSERT INTO quota_notices (tenant_id, metric, month, threshold_percent, used, quota) VALUES ($1, 'api.requests', $2, $3, 1, 1)", values),
        ),
      );
      expect(refused?.code).toBe('23514');
    }
  });

  test('the ingestion offsets are app_service\'s, not Hasura\'s', async () => {
    const { rows } = await owner.query<{ role: string; privilege: string }>(
      `SELECT r AS role, p AS privilege FROM unnest($1::text[]) AS r, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS p
        WHERE has_table_privilege(r, 'public.usage_ingest_offsets', p) ORDER BY 1, 2`,
      [['hasura_app', 'app_service']],
    );
    expect(rows).toEqual([
      { role: 'app_service', privilege: 'INSERT' },
      { role: 'app_service', privilege: 'SELECT' },
      { role: 'app_service', privilege: 'UPDATE' },
    ]);
  });
});

describe('temporary tables cannot stand in for what the definers read', () => {
  let scratch: ScratchDatabase;
  let scratchAdmin: pg.Pool;
  let attacker: pg.Client;
  let tenant: SeededTenant;
  beforeAll(async () => {
    scratch = await createScratchDatabase({ migrated: true });
    await scratch.grantTemporary(['app_service']);
    scratchAdmin = new pg.Pool({ connectionString: scratch.url('platform_admin'), max: 2 });
    tenant = await seedTenant(scratchAdmin, 'shadowed');
    attacker = new pg.Client({ connectionString: scratch.url('app_service') });
    await attacker.connect();
  }, 120_000);
  afterAll(async () => {
    await attacker?.end();
    await scratchAdmin?.end();
    await scratch?.drop();
  });

  test('tenants, tenant_members, tenant_usage and quota_notices of pg_temp are ignored', async () => {
    const fake = '11111111-1111-4111-8111-111111111111';
    for (const statement of [
      'CREATE TEMP TABLE tenants (id uuid, status text, plan_id text, max_api_requests_month bigint)',
      `INSERT INTO pg_temp.tenants VALUES ('${fake}', 'active', 'pro', 1)`,
      'CREATE TEMP TABLE tenant_members (tenant_id uuid)',
      `INSERT INTO pg_temp.tenant_members SELECT '${tenant.tenantId}' FROM generate_series(1, 50)`,
      'CREATE TEMP TABLE tenant_usage (tenant_id uuid, metric text, period_start timestamptz, quantity bigint)',
      'CREATE TEMP TABLE quota_notices (tenant_id uuid, metric text, month date, threshold_percent integer)',
      `INSERT INTO pg_temp.quota_notices VALUES ('${tenant.tenantId}', 'api.requests', '${MONTH}', 80), ('${tenant.tenantId}', 'api.requests', '${MONTH}', 100)`,
      'GRANT ALL ON pg_temp.tenants, pg_temp.tenant_members, pg_temp.tenant_usage, pg_temp.quota_notices TO PUBLIC',
    ]) {
      await attacker.query(statement);
    }
    await scratchAdmin.query('UPDATE tenants SET max_api_requests_month = 10 WHERE id = $1', [tenant.tenantId]);
    const added = await attacker.query<{ rows: number }>('SELECT app.usage_add($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[]) AS rows', [
      [fake, tenant.tenantId],
      ['api.requests', 'api.requests'],
      [hourIn(4, 0), hourIn(4, 0)],
      [5, 10],
    ]);
    expect(added.rows[0]!.rows).toBe(1);
    await attacker.query("SELECT app.usage_sample('users.count', $1)", [hourIn(4, 0)]);
    const { rows } = await scratchAdmin.query<{ metric: string; quantity: string }>(
      'SELECT metric, quantity::text FROM public.tenant_usage WHERE tenant_id = $1 AND period_start = $2 ORDER BY metric',
      [tenant.tenantId, hourIn(4, 0)],
    );
    expect(rows).toEqual([
      { metric: 'api.requests', quantity: '10' },
      { metric: 'users.count', quantity: '2' },
    ]);
    expect(await scratchAdmin.query('SELECT 1 FROM public.tenant_usage WHERE tenant_id = $1', [fake]).then((r) => r.rowCount)).toBe(0);
    const due = await attacker.query<{ threshold_percent: number }>('SELECT threshold_percent FROM app.quota_notices_due($1) WHERE tenant_id = $2 ORDER BY 1', [MONTH, tenant.tenantId]);
    expect(due.rows.map((row) => row.threshold_percent)).toEqual([80, 100]);
  });
});

describe('down and up again', () => {
  let scratch: ScratchDatabase;
  let directory: string;
  let client: pg.Client;
  beforeAll(async () => {
    directory = mkdtempSync(path.join(os.tmpdir(), 'tenantry-migrations-'));
    for (const entry of readdirSync(services().migrationsDir)) {
      if (entry.split('_')[0]! <= VERSION) cpSync(path.join(services().migrationsDir, entry), path.join(directory, entry), { recursive: true });
    }
    scratch = await createScratchDatabase({ migrated: false });
    await migrate({ databaseUrl: scratch.url('tenantry_owner'), directory });
    client = new pg.Client({ connectionString: scratch.url('tenantry_owner') });
    await client.connect();
  }, 120_000);
  afterAll(async () => {
    await client?.end();
    await scratch?.drop();
    if (directory) rmSync(directory, { recursive: true, force: true });
  });

  test('down gives back the schema and privileges it found; up applies again to the same result', async () => {
    const migrated = await schemaSnapshot(client);
    await rollback({ databaseUrl: scratch.url('tenantry_owner'), directory, steps: 1 });
    const found = await schemaSnapshot(client);
    expect(found.columns.some((line) => line.startsWith('quota_notices.') || line.startsWith('usage_ingest_offsets.'))).toBe(false);
    expect(found.columns.some((line) => line.startsWith('tenant_resolution.api_requests_month_used'))).toBe(false);
    await migrate({ databaseUrl: scratch.url('tenantry_owner'), directory });
    expect(await schemaSnapshot(client)).toEqual(migrated);
    expect(await lintTenantIsolation(client)).toEqual([]);
    // A second round trip starts from the same schema again.
    await rollback({ databaseUrl: scratch.url('tenantry_owner'), directory, steps: 1 });
    expect(await schemaSnapshot(client)).toEqual(found);
    await migrate({ databaseUrl: scratch.url('tenantry_owner'), directory });
  });
});
