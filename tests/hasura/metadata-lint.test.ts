import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { diffMetadata, generateMetadata, METADATA_DIR } from '../../scripts/hasura/generate-metadata.js';
import { lintMetadata, loadTables, requiresTenant, type MetadataProblem, type TableMetadata } from '../../scripts/hasura/metadata-lint.js';
import { PLAN_FEATURES, TRACKED_TABLES } from '../../scripts/hasura/registry.js';
import { BASE_HASURA_ROLES, HASURA_ROLE, READ_ONLY_HASURA_ROLES, ROLES } from '../../services/shared/src/roles.js';
import { services } from '../helpers/database.js';

const rules = (problems: MetadataProblem[]) => [...new Set(problems.map((problem) => problem.rule))].sort();

describe('generated metadata', () => {
  test('the committed hasura/metadata is exactly what the registry generates', () => {
    expect(diffMetadata(), 'run: npm run hasura:metadata').toEqual([]);
  });

  test('a hand edit, a missing file and a stray file are all reported', () => {
    const copy = mkdtempSync(path.join(os.tmpdir(), 'hasura-metadata-'));
    try {
      cpSync(METADATA_DIR, copy, { recursive: true });
      writeFileSync(path.join(copy, 'databases/default/tables/public_projects.yaml'), 'table: {name: projects, schema: public}\n');
      rmSync(path.join(copy, 'version.yaml'));
      writeFileSync(path.join(copy, 'databases/default/tables/public_widgets.yaml'), '{}\n');
      expect(diffMetadata(copy)).toEqual([
        'changed: databases/default/tables/public_projects.yaml',
        'missing: version.yaml',
        'not generated: databases/default/tables/public_widgets.yaml',
      ]);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  test('GraphQL names are clean and the source reads its URL from the environment', () => {
    const files = generateMetadata();
    expect(files.get('databases/databases.yaml')).toContain('from_env: HASURA_GRAPHQL_DATABASE_URL');
    expect(files.get('databases/databases.yaml')).toContain('use_prepared_statements: false');
    expect(files.get('version.yaml')).toContain('version: 3');
    for (const table of TRACKED_TABLES) expect(table.graphqlName).toMatch(/^[a-z][a-z_]*$/);
    expect(TRACKED_TABLES.map((table) => table.graphqlName)).toContain('tenant_members');
  });

  test('the tenant admin is not Hasura\'s built-in admin', () => {
    expect(HASURA_ROLE.admin).toBe('tenant_admin');
    // Every tenant role of the auth service has its Hasura role, and none is `admin`.
    expect(Object.keys(HASURA_ROLE).sort()).toEqual([...ROLES].sort());
    expect(Object.values(HASURA_ROLE)).not.toContain('admin');
    expect([...generateMetadata().values()].join('\n')).not.toMatch(/role: admin$/m);
  });
});

test('requiresTenant: a direct comparison or a conjunct of _and, never under _or or _not', () => {
  const tenant = { tenant_id: { _eq: 'X-Hasura-Tenant-Id' } };
  expect(requiresTenant(tenant, 'tenant_id')).toBe(true);
  expect(requiresTenant({ tenant_id: { _eq: 'x-hasura-tenant-id' } }, 'tenant_id')).toBe(true);
  expect(requiresTenant({ _and: [{ status: { _eq: 'active' } }, { _and: [tenant] }] }, 'tenant_id')).toBe(true);
  expect(requiresTenant({ _or: [tenant, { status: { _eq: 'active' } }] }, 'tenant_id')).toBe(false);
  expect(requiresTenant({ _not: tenant }, 'tenant_id')).toBe(false);
  expect(requiresTenant({ tenant_id: { _neq: 'X-Hasura-Tenant-Id' } }, 'tenant_id')).toBe(false);
  expect(requiresTenant({ tenant_id: { _eq: 'X-Hasura-User-Id' } }, 'tenant_id')).toBe(false);
  expect(requiresTenant({}, 'tenant_id')).toBe(false);
});

describe('the metadata lint against the migrated database', () => {
  let client: pg.Client;
  beforeAll(async () => {
    client = new pg.Client({ connectionString: services().urls.tenantry_owner });
    await client.connect();
  });
  afterAll(async () => {
    await client.end();
  });

  /** The committed metadata, changed by `mutate` on a deep copy. */
  const mutated = (mutate: (tables: Map<string, TableMetadata>) => void): TableMetadata[] => {
    const tables = structuredClone(loadTables());
    mutate(new Map(tables.map((table) => [table.table.name, table])));
    return tables;
  };
  /**
   * The lint of a mutated copy. The mutations here change base roles only, so their read-only
   * twins keep the generated permission and differ from them: that rule has its own tests
   * (tests/hasura/readonly-roles.test.ts) and is left out of these.
   */
  const lintWith = async (mutate: (tables: Map<string, TableMetadata>) => void) =>
    (await lintMetadata(client, mutated(mutate))).filter((problem) => problem.rule !== 'read-only-select-differs');
  const permission = <K extends 'select_permissions' | 'insert_permissions' | 'update_permissions' | 'delete_permissions'>(
    table: TableMetadata,
    kind: K,
    role: string,
  ) => table[kind]!.find((entry) => entry.role === role)!.permission as NonNullable<TableMetadata[K]>[number]['permission'];

  test('the committed metadata passes', async () => {
    expect(await lintMetadata(client)).toEqual([]);
  });

  test('every tenant table of the isolation catalog is tracked, with every role filtered', async () => {
    const tracked = new Map(loadTables().map((table) => [table.table.name, table]));
    for (const name of ['tenants', 'tenant_members', 'tenant_domains', 'tenant_settings', 'tenant_invitations', 'api_keys', 'tenant_subscriptions', 'tenant_usage', 'audit_log', 'projects']) {
      expect(tracked.has(name), name).toBe(true);
    }
    expect(tracked.has('refresh_tokens')).toBe(false);
  });

  test('a tracked table that does not exist', async () => {
    const problems = await lintWith((tables) => {
      tables.get('projects')!.table.name = 'no_such_table';
    });
    expect(problems).toContainEqual(expect.objectContaining({ table: 'no_such_table', rule: 'unknown-table' }));
    // …and projects itself is now untracked.
    expect(problems).toContainEqual(expect.objectContaining({ table: 'projects', rule: 'untracked-table' }));
  });

  test('a column that does not exist, in a column list and in a filter through a relationship', async () => {
    const problems = await lintWith((tables) => {
      permission(tables.get('projects')!, 'select_permissions', 'member').columns = ['id', 'colour'];
      permission(tables.get('users')!, 'select_permissions', 'member').filter = { memberships: { tenant: { nickname: { _eq: 'x' } } } };
    });
    expect(rules(problems)).toEqual(['unknown-column']);
    expect(problems.map((problem) => problem.message).join('\n')).toMatch(/colour[\s\S]*nickname/);
  });

  test('a relationship without its foreign key', async () => {
    const problems = await lintWith((tables) => {
      tables.get('projects')!.object_relationships!.push({ name: 'owner', using: { foreign_key_constraint_on: 'description' } });
      tables.get('tenants')!.array_relationships!.push({
        name: 'tokens',
        using: { foreign_key_constraint_on: { column: 'user_id', table: { name: 'refresh_tokens' } } },
      });
      tables.get('tenants')!.object_relationships!.push({
        name: 'nothing',
        using: { manual_configuration: { remote_table: { name: 'projects' }, column_mapping: { id: 'no_column' } } },
      });
    });
    expect(rules(problems)).toEqual(['unknown-relationship']);
    expect(problems).toHaveLength(3);
  });

  test('a tenant table neither tracked nor internal', async () => {
    await client.query('BEGIN');
    try {
      await client.query('CREATE TABLE widgets (id uuid PRIMARY KEY, tenant_id uuid NOT NULL)');
      const problems = await lintMetadata(client);
      expect(problems).toEqual([expect.objectContaining({ table: 'widgets', rule: 'untracked-table', message: expect.stringContaining('tenant rows') })]);
      expect(await lintMetadata(client, loadTables(), { internalTables: { widgets: 'test', refresh_tokens: 'x', stripe_events: 'x', auth_email_tokens: 'x', usage_ingest_offsets: 'x' } })).toEqual([]);
    } finally {
      await client.query('ROLLBACK');
    }
    const untracked = await lintMetadata(client, loadTables(), { internalTables: {} });
    expect(untracked.map((problem) => problem.table).sort()).toEqual(['auth_email_tokens', 'refresh_tokens', 'stripe_events', 'usage_ingest_offsets']);
  });

  test('a select without the tenant filter, or with none at all', async () => {
    const problems = await lintWith((tables) => {
      permission(tables.get('projects')!, 'select_permissions', 'member').filter = {
        _or: [{ tenant_id: { _eq: 'X-Hasura-Tenant-Id' } }, { status: { _eq: 'active' } }],
      };
      permission(tables.get('tenants')!, 'select_permissions', 'guest').filter = {};
      permission(tables.get('plans')!, 'select_permissions', 'anonymous').filter = {};
    });
    expect(problems.map((problem) => `${problem.table}/${problem.role}/${problem.rule}`).sort()).toEqual([
      'plans/anonymous/unfiltered-select',
      'projects/member/tenant-filter-missing',
      'tenants/guest/unfiltered-select',
    ]);
  });

  test('writes without the tenant filter, check or preset, or writing the tenant column', async () => {
    const problems = await lintWith((tables) => {
      const projects = tables.get('projects')!;
      const insert = permission(projects, 'insert_permissions', 'member');
      insert.check = {};
      insert.set = { created_by: 'X-Hasura-User-Id' };
      (insert.columns as string[]).push('tenant_id');
      permission(projects, 'update_permissions', 'owner').filter = { status: { _eq: 'active' } };
      permission(projects, 'update_permissions', 'tenant_admin').check = null;
      permission(projects, 'delete_permissions', 'member').filter = {};
    });
    expect(problems.map((problem) => `${problem.role}/${problem.rule}`).sort()).toEqual([
      'member/tenant-check-missing',
      'member/tenant-column-writable',
      'member/tenant-filter-missing',
      'member/tenant-preset-missing',
      'owner/tenant-filter-missing',
      'tenant_admin/tenant-check-missing',
    ]);
  });

  test('Hasura\'s reserved admin role, an unknown role, and "*" columns', async () => {
    const problems = await lintWith((tables) => {
      tables.get('projects')!.select_permissions!.find((entry) => entry.role === 'tenant_admin')!.role = 'admin';
      tables.get('projects')!.select_permissions!.find((entry) => entry.role === 'guest')!.role = 'visitor';
      permission(tables.get('projects')!, 'update_permissions', 'member').columns = '*';
    });
    expect(rules(problems)).toEqual(['reserved-role', 'unknown-role', 'wildcard-columns']);
  });

  test('hashes, billing for members and guests, and columns only the platform may write', async () => {
    const problems = await lintWith((tables) => {
      (permission(tables.get('users')!, 'select_permissions', 'owner').columns as string[]).push('password_hash');
      (permission(tables.get('plans')!, 'select_permissions', 'guest').columns as string[]).push('monthly_price_cents');
      (permission(tables.get('plans')!, 'select_permissions', 'member').columns as string[]).push('currency');
      (permission(tables.get('tenants')!, 'select_permissions', 'member').columns as string[]).push('stripe_customer_id');
      tables.get('tenant_subscriptions')!.select_permissions!.push({
        role: 'guest',
        permission: { columns: ['id', 'status'], filter: { tenant_id: { _eq: 'X-Hasura-Tenant-Id' } } },
      });
      tables.get('tenant_usage')!.select_permissions!.push({
        role: 'member',
        permission: { columns: ['metric', 'quantity'], filter: { tenant_id: { _eq: 'X-Hasura-Tenant-Id' } } },
      });
      (permission(tables.get('tenant_domains')!, 'insert_permissions', 'tenant_admin').columns as string[]).push('verified_at');
      (permission(tables.get('tenants')!, 'update_permissions', 'owner').columns as string[]).push('status', 'plan_id', 'stripe_customer_id', 'feature_overrides');
    });
    // password_hash is not even granted to hasura_app, nor are the tenants columns: both rules speak.
    expect(rules(problems)).toEqual(['billing-below-manager', 'column-not-granted', 'secret-column', 'server-only-writable']);
    expect(problems.filter((problem) => problem.rule === 'billing-below-manager').map((problem) => `${problem.table}/${problem.role}`).sort()).toEqual([
      'plans/guest',
      'plans/member',
      'tenant_subscriptions/guest',
      'tenant_usage/member',
      'tenants/member',
    ]);
    const serverOnly = problems.filter((problem) => problem.rule === 'server-only-writable');
    expect(serverOnly.map((problem) => `${problem.table}.${/write (\w+),/.exec(problem.message)?.[1]}`).sort()).toEqual([
      'tenant_domains.verified_at',
      'tenants.feature_overrides',
      'tenants.plan_id',
      'tenants.status',
      'tenants.stripe_customer_id',
    ]);
  });

  test('billing for members and guests is caught in the read-only twins too', async () => {
    const problems = await lintMetadata(
      client,
      mutated((tables) => {
        (permission(tables.get('plans')!, 'select_permissions', 'member_readonly').columns as string[]).push('monthly_price_cents');
        tables.get('tenant_subscriptions')!.select_permissions!.push({
          role: 'guest_readonly',
          permission: { columns: ['status'], filter: { tenant_id: { _eq: 'X-Hasura-Tenant-Id' } } },
        });
      }),
    );
    expect(problems.filter((problem) => problem.rule === 'billing-below-manager').map((problem) => `${problem.table}/${problem.role}`).sort()).toEqual([
      'plans/member_readonly',
      'tenant_subscriptions/guest_readonly',
    ]);
  });

  test('the committed metadata: members and guests read no billing, every tenant role reads the plan features', () => {
    const tables = new Map(loadTables().map((table) => [table.table.name, table]));
    const selectRoles = (name: string) => (tables.get(name)!.select_permissions ?? []).map((entry) => entry.role).sort();
    expect(selectRoles('tenant_subscriptions')).toEqual(['owner', 'owner_readonly', 'tenant_admin', 'tenant_admin_readonly']);
    expect(selectRoles('tenant_usage')).toEqual(['owner', 'owner_readonly', 'tenant_admin', 'tenant_admin_readonly']);
    const tenants = tables.get('tenants')!;
    expect(tenants.computed_fields!.map((field) => [field.name, `${field.definition.function.schema}.${field.definition.function.name}`])).toEqual(
      PLAN_FEATURES.map((feature) => [`has_feature_${feature}`, `app.tenant_has_feature_${feature}`]),
    );
    for (const role of [...BASE_HASURA_ROLES, ...READ_ONLY_HASURA_ROLES]) {
      expect(permission(tenants, 'select_permissions', role).computed_fields, role).toEqual(PLAN_FEATURES.map((feature) => `has_feature_${feature}`));
    }
    for (const role of ['owner', 'tenant_admin']) {
      expect(permission(tables.get('tenant_domains')!, 'insert_permissions', role).check).toEqual({
        _and: [{ tenant_id: { _eq: 'X-Hasura-Tenant-Id' } }, { tenant: { has_feature_custom_domains: { _eq: true } } }],
      });
    }
  });

  test('computed fields: a missing function, a function of another table, an undefined field in a permission or filter', async () => {
    const problems = await lintWith((tables) => {
      const tenants = tables.get('tenants')!;
      tenants.computed_fields!.push(
        { name: 'has_feature_teleport', definition: { function: { schema: 'app', name: 'tenant_has_feature_teleport' } } },
        { name: 'role_rank', definition: { function: { schema: 'app', name: 'current_member_role' } } },
      );
      permission(tenants, 'select_permissions', 'guest').computed_fields!.push('has_feature_nothing');
      permission(tables.get('tenant_domains')!, 'insert_permissions', 'owner').check = {
        _and: [{ tenant_id: { _eq: 'X-Hasura-Tenant-Id' } }, { tenant: { has_feature_vanity: { _eq: true } } }],
      };
    });
    expect(problems.map((problem) => `${problem.rule}: ${problem.message}`).sort()).toEqual([
      expect.stringMatching(/^unknown-column: tenants \(owner\): insert check names has_feature_vanity/),
      expect.stringMatching(/^unknown-computed-field: tenants \(guest\): .*has_feature_nothing/),
      expect.stringMatching(/^unknown-computed-field: tenants: computed field has_feature_teleport: no function app.tenant_has_feature_teleport\(tenants\)/),
      expect.stringMatching(/^unknown-computed-field: tenants: computed field role_rank: no function app.current_member_role\(tenants\)/),
    ]);
  });

  test('a computed field whose function hasura_app may not run', async () => {
    await client.query('BEGIN');
    try {
      await client.query('REVOKE EXECUTE ON FUNCTION app.tenant_has_feature_sso(public.tenants) FROM hasura_app');
      const problems = await lintMetadata(client);
      expect(problems).toEqual([
        expect.objectContaining({ table: 'tenants', rule: 'column-not-granted', message: expect.stringContaining('EXECUTE app.tenant_has_feature_sso') }),
      ]);
    } finally {
      await client.query('ROLLBACK');
    }
  });

  test('a feature in plans.features without its computed field, or with a field backed by another function', async () => {
    await client.query('BEGIN');
    try {
      await client.query(`UPDATE plans SET features = features || '{"white_label": true}' WHERE id = 'enterprise'`);
      const problems = await lintMetadata(
        client,
        mutated((tables) => {
          tables.get('tenants')!.computed_fields!.find((field) => field.name === 'has_feature_sso')!.definition.function.name = 'tenant_has_feature_api_keys';
        }),
      );
      expect(problems.filter((problem) => problem.rule === 'feature-without-computed-field').map((problem) => problem.message)).toEqual([
        expect.stringContaining('plans.features names sso'),
        expect.stringContaining('plans.features names white_label'),
      ]);
    } finally {
      await client.query('ROLLBACK');
    }
  });

  test('anonymous writes or aggregates', async () => {
    const problems = await lintWith((tables) => {
      permission(tables.get('plans')!, 'select_permissions', 'anonymous').allow_aggregations = true;
      tables.get('projects')!.insert_permissions!.push({
        role: 'anonymous',
        permission: { check: { tenant_id: { _eq: 'X-Hasura-Tenant-Id' } }, set: { tenant_id: 'X-Hasura-Tenant-Id' }, columns: ['name'] },
      });
    });
    expect(rules(problems)).toEqual(['anonymous-aggregation', 'anonymous-write']);
  });

  test('columns and commands Postgres does not grant to hasura_app', async () => {
    const problems = await lintWith((tables) => {
      const apiKeys = tables.get('api_keys')!;
      apiKeys.insert_permissions = [
        { role: 'owner', permission: { check: { tenant_id: { _eq: 'X-Hasura-Tenant-Id' } }, set: { tenant_id: 'X-Hasura-Tenant-Id' }, columns: ['name'] } },
      ];
      apiKeys.delete_permissions = [{ role: 'owner', permission: { filter: { tenant_id: { _eq: 'X-Hasura-Tenant-Id' } } } }];
      permission(tables.get('tenant_invitations')!, 'select_permissions', 'owner').filter = {
        _and: [{ tenant_id: { _eq: 'X-Hasura-Tenant-Id' } }, { token_hash: { _is_null: false } }],
      };
    });
    expect(rules(problems)).toEqual(['column-not-granted']);
    expect(problems.map((problem) => problem.message).join('\n')).toMatch(/INSERT[\s\S]*DELETE[\s\S]*token_hash/);
  });
});

test('npm run hasura:lint runs the same lint against a database', async () => {
  const { spawnSync } = await import('node:child_process');
  const root = path.resolve(import.meta.dirname, '../..');
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/hasura/lint.ts'], {
    cwd: root,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, DATABASE_URL: services().urls.tenantry_owner },
  });
  expect(run.status, run.stderr).toBe(0);
  expect(run.stdout).toContain('hasura/metadata passes the lint');
});
