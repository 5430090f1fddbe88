import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { lintTenantIsolation, unwrappedHelperCalls, type IsolationProblem } from '../../services/shared/src/db/isolation-lint.js';
import { createScratchDatabase, services, type ScratchDatabase } from '../helpers/database.js';

const rulesFor = (problems: IsolationProblem[], table: string) => [...new Set(problems.filter((p) => p.table === table).map((p) => p.rule))].sort();

test('the migrated schema passes the isolation lint', async () => {
  const client = new pg.Client({ connectionString: services().urls.tenantry_owner });
  await client.connect();
  try {
    expect(await lintTenantIsolation(client)).toEqual([]);
  } finally {
    await client.end();
  }
});

test('helper calls count as wrapped only inside a (SELECT …)', () => {
  expect(unwrappedHelperCalls('(tenant_id = ( SELECT app.current_tenant_id() AS current_tenant_id))')).toEqual([]);
  expect(unwrappedHelperCalls("(tenant_id = ( SELECT ((NULLIF(current_setting('hasura.user'::text, true), ''::text))::jsonb ->> 'x'::text)::uuid AS uuid))")).toEqual([]);
  expect(unwrappedHelperCalls('(tenant_id = app.current_tenant_id())')).toEqual(['app.current_tenant_id']);
  expect(unwrappedHelperCalls("((current_setting('hasura.user'::text, true))::jsonb ->> 'x'::text)")).toEqual(['current_setting']);
  expect(unwrappedHelperCalls("(( SELECT 1) = 1 AND tenant_id = app.current_tenant_id())")).toEqual(['app.current_tenant_id']);
});

describe('the lint catches each way a tenant table can leak', () => {
  let scratch: ScratchDatabase;
  let owner: pg.Client;
  let admin: pg.Client;

  beforeAll(async () => {
    scratch = await createScratchDatabase({ migrated: true });
    owner = new pg.Client({ connectionString: scratch.url('tenantry_owner') });
    await owner.connect();
    const adminUrl = new URL(services().endpoints.postgresAdminUrl);
    adminUrl.pathname = `/${scratch.name}`;
    admin = new pg.Client({ connectionString: adminUrl.toString() });
    await admin.connect();
  });
  afterAll(async () => {
    await owner.end();
    await admin.end();
    await scratch.drop();
  });

  /** Runs DDL and the lint in one transaction that is rolled back, so cases stay apart. */
  async function lintAfter(client: pg.Client, ddl: string): Promise<IsolationProblem[]> {
    await client.query('BEGIN');
    try {
      await client.query(ddl);
      return await lintTenantIsolation(client);
    } finally {
      await client.query('ROLLBACK');
    }
  }

  const wellFormed = (table: string) => `
    CREATE TABLE ${table} (id uuid PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE);
    CREATE INDEX ON ${table} (tenant_id);
    SELECT app.enable_tenant_isolation('${table}');`;

  test('a well-formed table passes', async () => {
    expect(await lintAfter(owner, wellFormed('widgets'))).toEqual([]);
  });

  test('no row-level security at all', async () => {
    const problems = await lintAfter(
      owner,
      'CREATE TABLE widgets (tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE); CREATE INDEX ON widgets (tenant_id);',
    );
    expect(rulesFor(problems, 'widgets')).toEqual(['policy-missing', 'rls-disabled', 'rls-not-forced']);
    expect(problems.filter((p) => p.rule === 'policy-missing')).toHaveLength(8);
  });

  test('enabled but not forced', async () => {
    const problems = await lintAfter(owner, `${wellFormed('widgets')} ALTER TABLE widgets NO FORCE ROW LEVEL SECURITY;`);
    expect(rulesFor(problems, 'widgets')).toEqual(['rls-not-forced']);
  });

  test('one command without a policy', async () => {
    const problems = await lintAfter(owner, `${wellFormed('widgets')} DROP POLICY hasura_delete ON widgets;`);
    expect(problems.map((p) => p.message)).toEqual(['widgets: no DELETE policy for hasura_app']);
  });

  test('no index leading with tenant_id, and a partial one does not count', async () => {
    const problems = await lintAfter(
      owner,
      `CREATE TABLE widgets (id uuid, tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE);
       CREATE INDEX ON widgets (id, tenant_id);
       CREATE INDEX ON widgets (tenant_id) WHERE id IS NOT NULL;
       SELECT app.enable_tenant_isolation('widgets');`,
    );
    expect(rulesFor(problems, 'widgets')).toEqual(['index-missing']);
  });

  test('tenant_id without a cascading foreign key', async () => {
    const problems = await lintAfter(
      owner,
      `CREATE TABLE widgets (tenant_id uuid NOT NULL REFERENCES tenants (id));
       CREATE TABLE gadgets (tenant_id uuid NOT NULL);
       CREATE INDEX ON widgets (tenant_id); CREATE INDEX ON gadgets (tenant_id);
       SELECT app.enable_tenant_isolation('widgets'); SELECT app.enable_tenant_isolation('gadgets');`,
    );
    expect(rulesFor(problems, 'widgets')).toEqual(['foreign-key-missing']);
    expect(rulesFor(problems, 'gadgets')).toEqual(['foreign-key-missing']);
  });

  test('a policy calling a helper per row', async () => {
    const problems = await lintAfter(
      owner,
      `${wellFormed('widgets')}
       DROP POLICY service_select ON widgets;
       CREATE POLICY service_select ON widgets FOR SELECT TO app_service USING (tenant_id = app.current_tenant_id());`,
    );
    expect(rulesFor(problems, 'widgets')).toEqual(['helper-unwrapped', 'policy-without-tenant']);
  });

  test('an extra permissive policy that opens the table', async () => {
    const problems = await lintAfter(owner, `${wellFormed('widgets')} CREATE POLICY everyone ON widgets FOR SELECT USING (true);`);
    expect(rulesFor(problems, 'widgets')).toEqual(['policy-without-tenant']);
    expect(problems.map((p) => p.message)).toContain(
      'widgets: policy everyone (SELECT, app_service) does not compare tenant_id with the session tenant',
    );
  });

  test('a service role that owns a tenant table', async () => {
    const problems = await lintAfter(admin, `${wellFormed('widgets')} ALTER TABLE widgets OWNER TO app_service;`);
    expect(problems.map((p) => p.message)).toContain('role app_service is owner of widgets: row-level security does not bind it');
  });

  test('a service role that can become a BYPASSRLS role', async () => {
    const problems = await lintAfter(admin, 'CREATE ROLE lint_probe_bypass NOLOGIN BYPASSRLS; GRANT lint_probe_bypass TO hasura_app;');
    expect(problems).toEqual([
      { table: '*', rule: 'role-can-bypass', message: 'role hasura_app is a member of lint_probe_bypass, which is BYPASSRLS' },
    ]);
  });
});
