import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  lintFunctionPrivileges,
  lintTenantIsolation,
  PLATFORM_TENANT_COLUMNS,
  searchPathSchemas,
  unwrappedHelperCalls,
  type IsolationProblem,
} from '../../services/shared/src/db/isolation-lint.js';
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

test('the migrated schema has no definer without pg_temp last and no function executable by PUBLIC', async () => {
  const client = new pg.Client({ connectionString: services().urls.tenantry_owner });
  await client.connect();
  try {
    expect(await lintFunctionPrivileges(client)).toEqual([]);
  } finally {
    await client.end();
  }
});

test('a search_path splits into schemas as Postgres reads it', () => {
  expect(searchPathSchemas('pg_catalog, public, pg_temp')).toEqual(['pg_catalog', 'public', 'pg_temp']);
  expect(searchPathSchemas('pg_catalog, "pg_temp"')).toEqual(['pg_catalog', 'pg_temp']);
  // One quoted name, commas and all: what SET search_path = 'a, b' stores.
  expect(searchPathSchemas('"pg_catalog, public, pg_temp"')).toEqual(['pg_catalog, public, pg_temp']);
  expect(searchPathSchemas('"$user", "we""ird", pg_temp')).toEqual(['$user', 'we"ird', 'pg_temp']);
  expect(searchPathSchemas('')).toEqual([]);
});

test('helper calls count as wrapped only inside a (SELECT …)', () => {
  expect(unwrappedHelperCalls('(tenant_id = ( SELECT app.current_tenant_id() AS current_tenant_id))')).toEqual([]);
  expect(unwrappedHelperCalls("(tenant_id = ( SELECT ((NULLIF(current_setting('hasura.user'::text, true), ''::text))::jsonb ->> 'x'::text)::uuid AS uuid))")).toEqual([]);
  expect(unwrappedHelperCalls('(tenant_id = app.current_tenant_id())')).toEqual(['app.current_tenant_id']);
  expect(unwrappedHelperCalls("((current_setting('hasura.user'::text, true))::jsonb ->> 'x'::text)")).toEqual(['current_setting']);
  expect(unwrappedHelperCalls("(( SELECT 1) = 1 AND tenant_id = app.current_tenant_id())")).toEqual(['app.current_tenant_id']);
});

// One migrated scratch database for every lint case: the tenantry owner, and a superuser
// (`admin`) for what only a superuser can set up.
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
    // The whole lint, as `npm run db:lint` runs it: function problems must show there too.
    return await lintTenantIsolation(client);
  } finally {
    await client.query('ROLLBACK');
  }
}

describe('the lint catches each way a tenant table can leak', () => {
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
    expect(rulesFor(problems, 'widgets')).toEqual(['deleted-tenant-writable', 'policy-missing', 'rls-disabled', 'rls-not-forced']);
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

describe("the lint catches an isolated role that may write the platform's columns of a tenant", () => {
  test('UPDATE on the whole tenants row, or on plan_id, for a service or Hasura', async () => {
    const problems = await lintAfter(owner, 'GRANT UPDATE ON tenants TO app_service; GRANT UPDATE (plan_id, name) ON tenants TO hasura_app;');
    const writable = problems.filter((problem) => problem.rule === 'platform-column-writable');
    expect(writable.map((problem) => /^tenants: (\w+) may UPDATE (\w+),/.exec(problem.message)!.slice(1).join('.'))).toEqual([
      ...PLATFORM_TENANT_COLUMNS.map((column) => `app_service.${column}`).sort(),
      'hasura_app.plan_id',
    ]);
    expect(problems.filter((problem) => problem.rule !== 'platform-column-writable')).toEqual([]);
  });

  test('the columns the services and Hasura do write are not reported', async () => {
    expect(await lintAfter(owner, 'GRANT UPDATE (name, settings, owner_user_id, metadata) ON tenants TO app_service, hasura_app;')).toEqual([]);
  });
});

describe('the lint catches definers a temporary table can shadow and functions anyone may call', () => {
  const definer = (name: string, searchPath: string) => `
    CREATE FUNCTION ${name}() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER ${searchPath}
    AS $$ SELECT count(*) FROM public.tenant_members $$;
    REVOKE EXECUTE ON FUNCTION ${name}() FROM PUBLIC;`;

  test('a definer with pg_temp last, EXECUTE for one role, passes', async () => {
    const problems = await lintAfter(
      owner,
      `${definer('app.lint_probe', 'SET search_path = pg_catalog, public, pg_temp')}
       ALTER FUNCTION app.lint_probe() OWNER TO app_definer;
       GRANT EXECUTE ON FUNCTION app.lint_probe() TO app_service;`,
    );
    expect(problems).toEqual([]);
  });

  test('definers whose search_path lets pg_temp come first, in any schema', async () => {
    const problems = await lintAfter(
      owner,
      `CREATE SCHEMA lint_probe;
       ${definer('lint_probe.implicit_temp', 'SET search_path = pg_catalog, public')}
       ${definer('lint_probe.temp_first', 'SET search_path = pg_temp, pg_catalog, public')}
       ${definer('lint_probe.no_search_path', '')}
       ${definer('lint_probe.one_quoted_name', "SET search_path = 'pg_catalog, public, pg_temp'")}
       ${definer('lint_probe.fine', 'SET search_path = pg_catalog, public, pg_temp')}`,
    );
    expect(problems.map(({ table, rule }) => ({ table, rule }))).toEqual([
      { table: 'lint_probe.implicit_temp()', rule: 'definer-search-path' },
      { table: 'lint_probe.no_search_path()', rule: 'definer-search-path' },
      { table: 'lint_probe.one_quoted_name()', rule: 'definer-search-path' },
      { table: 'lint_probe.temp_first()', rule: 'definer-search-path' },
    ]);
    expect(problems[0]!.message).toBe(
      'lint_probe.implicit_temp(): SECURITY DEFINER with search_path = pg_catalog, public, which does not end with pg_temp, so a temporary table shadows its tables',
    );
  });

  test('a function of ours starts private; granting EXECUTE to PUBLIC is reported', async () => {
    const fresh = 'CREATE FUNCTION app.lint_probe() RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT 1 $$;';
    expect(await lintAfter(owner, fresh)).toEqual([]);
    const problems = await lintAfter(owner, `${fresh} GRANT EXECUTE ON FUNCTION app.lint_probe() TO PUBLIC;`);
    expect(problems).toEqual([
      {
        table: 'app.lint_probe()',
        rule: 'function-public-execute',
        message: 'app.lint_probe(): EXECUTE is granted to PUBLIC; revoke it and grant it to the roles that call it',
      },
    ]);
  });

  test('a function with the default ACL (NULL: EXECUTE for PUBLIC) is reported', async () => {
    // The superuser has no default privileges of ours, so its function keeps PostgreSQL's.
    const problems = await lintAfter(admin, 'CREATE FUNCTION public.lint_probe(integer) RETURNS int LANGUAGE sql AS $$ SELECT $1 $$;');
    const acl = await admin.query("SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'lint_probe'");
    expect(acl.rows).toEqual([{ n: 0 }]);
    expect(problems.map(({ table, rule }) => ({ table, rule }))).toEqual([{ table: 'lint_probe(integer)', rule: 'function-public-execute' }]);
  });
});
