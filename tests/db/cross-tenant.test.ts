/**
 * Cross-tenant isolation, generated from the catalog: every table listTenantTables() finds
 * is tested for both isolated roles, so a new tenant table is covered without a new test.
 * Tenant A is the session tenant; tenant B is the victim. Every write attempt runs in a
 * transaction that is rolled back, and B's rows are compared as platform_admin afterwards.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listTenantTables, type TenantTable } from '../../services/shared/src/db/isolation-lint.js';
import { hasuraSessionJson, type TenantContext } from '../../services/shared/src/db/tenant-context.js';
import { SEEDED_TABLES, seedTenant, type DbError, type SeededTenant } from '../fixtures/seed.js';
import { poolAs, services } from '../helpers/database.js';

const ROLES = ['app_service', 'hasura_app'] as const;
type Role = (typeof ROLES)[number];

const RLS_REFUSAL = /new row violates row-level security policy/;
const PERMISSION_REFUSAL = /permission denied for table/;

const admin = poolAs('platform_admin');
const pools: Record<Role, pg.Pool> = { app_service: poolAs('app_service'), hasura_app: poolAs('hasura_app') };

// Generated at collection time from the catalog, so the test list follows the schema.
const TABLES: TenantTable[] = await (async () => {
  const client = await admin.connect();
  try {
    return await listTenantTables(client);
  } finally {
    client.release();
  }
})();

interface RolePrivileges {
  /** Every column of the copy insert may be inserted. */
  insert: boolean;
  delete: boolean;
  /** The tenant column may be updated (SET tenant = …). */
  updateTenant: boolean;
  /** A column the role may both read and update, for a no-op `SET c = c`; null if none. */
  noopColumn: string | null;
}

interface TableFacts {
  name: string;
  tenantColumn: string;
  /** Columns an INSERT of a copied row lists: not identity/generated, not a defaulted key (but always the tenant column). */
  insertColumns: string[];
  keyColumns: string[];
  privileges: Record<Role, RolePrivileges>;
}

const facts = new Map<string, TableFacts>();
let A: SeededTenant;
let B: SeededTenant;

const ident = (name: string) => pg.escapeIdentifier(name);
const qualified = (table: string) => `public.${ident(table)}`;
/**
 * Hasura's statement, verbatim (graphql-engine setHeadersTx): the name is quoted because
 * `user` is a reserved word, so an unquoted `SET LOCAL hasura.user = …` is a syntax error.
 */
const hasuraSetLocal = (json: string) => `SET LOCAL "hasura.user" = ${pg.escapeLiteral(json)}`;
const contextOf = (tenant: SeededTenant): TenantContext => ({ tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'member' });

async function loadFacts(target: TenantTable): Promise<TableFacts> {
  const { rows: columns } = await admin.query<{ name: string; skip: boolean; in_key: boolean; has_default: boolean }>(
    `SELECT a.attname AS name,
            (a.attidentity <> '' OR a.attgenerated <> '') AS skip,
            coalesce(a.attnum = ANY (i.indkey::int2[]), false) AS in_key,
            a.atthasdef AS has_default
       FROM pg_attribute a
       LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
      WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [qualified(target.table)],
  );
  const insertColumns = columns
    .filter((column) => !column.skip)
    .filter((column) => column.name === target.tenantColumn || !(column.in_key && column.has_default))
    .map((column) => column.name);
  const keyColumns = columns.filter((column) => column.in_key).map((column) => column.name);

  const privileges = {} as Record<Role, RolePrivileges>;
  for (const role of ROLES) {
    const { rows } = await admin.query<{ name: string; sel: boolean; ins: boolean; upd: boolean }>(
      `SELECT a.attname AS name,
              has_column_privilege($2, $1::regclass, a.attname, 'SELECT') AS sel,
              has_column_privilege($2, $1::regclass, a.attname, 'INSERT') AS ins,
              has_column_privilege($2, $1::regclass, a.attname, 'UPDATE') AS upd
         FROM pg_attribute a
        WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attname = $3 DESC, a.attnum`,
      [qualified(target.table), role, target.tenantColumn],
    );
    const table = await admin.query<{ del: boolean }>(`SELECT has_table_privilege($2, $1::regclass, 'DELETE') AS del`, [
      qualified(target.table),
      role,
    ]);
    const byName = new Map(rows.map((row) => [row.name, row]));
    privileges[role] = {
      insert: insertColumns.every((column) => byName.get(column)?.ins === true),
      delete: table.rows[0]!.del,
      updateTenant: byName.get(target.tenantColumn)?.upd === true,
      noopColumn: rows.find((row) => row.sel && row.upd)?.name ?? null,
    };
  }
  return { name: target.table, tenantColumn: target.tenantColumn, insertColumns, keyColumns, privileges };
}

/** Ground truth, as platform_admin (BYPASSRLS). */
async function adminCount(table: TableFacts, tenant: SeededTenant): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${qualified(table.name)} WHERE ${ident(table.tenantColumn)} = $1`,
    [tenant.tenantId],
  );
  return rows[0]!.n;
}

/** All of a tenant's rows in one table as canonical JSON text, as platform_admin. */
async function snapshot(table: TableFacts, tenant: SeededTenant): Promise<string> {
  const { rows } = await admin.query<{ rows: string }>(
    `SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]'::jsonb)::text AS rows
       FROM ${qualified(table.name)} t WHERE ${ident(table.tenantColumn)} = $1`,
    [tenant.tenantId],
  );
  return rows[0]!.rows;
}

/** One of a tenant's rows as JSON, as platform_admin. */
async function oneRow(table: TableFacts, tenant: SeededTenant): Promise<unknown> {
  const { rows } = await admin.query<{ row: unknown }>(
    `SELECT to_jsonb(t) AS row FROM ${qualified(table.name)} t WHERE ${ident(table.tenantColumn)} = $1
      ORDER BY to_jsonb(t)::text LIMIT 1`,
    [tenant.tenantId],
  );
  expect(rows, `${table.name}: no seed row for tenant ${tenant.slug}`).toHaveLength(1);
  return rows[0]!.row;
}

/**
 * A transaction as `role`, with tenant's context set the way that role's client sets it
 * (Hasura: SET LOCAL "hasura.user" = '<json>'; services: set_config(…, true)), or with no
 * context at all. Always rolled back.
 */
async function asRole<T>(role: Role, tenant: SeededTenant | null, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pools[role].connect();
  try {
    await client.query('BEGIN');
    if (tenant) {
      const json = hasuraSessionJson(contextOf(tenant));
      if (role === 'hasura_app') await client.query(hasuraSetLocal(json));
      else await client.query("SELECT set_config('hasura.user', $1, true)", [json]);
    }
    return await work(client);
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

type Outcome = { rowCount: number; error?: undefined } | { rowCount?: undefined; error: DbError };

/** One statement as `role` in a rolled-back transaction: its row count, or the error it raised. */
async function attempt(role: Role, tenant: SeededTenant | null, sql: string, params: unknown[]): Promise<Outcome> {
  return asRole(role, tenant, async (client) => {
    try {
      const result = await client.query(sql, params);
      return { rowCount: result.rowCount ?? 0 };
    } catch (error) {
      return { error: error as DbError };
    }
  });
}

function expectRefused(outcome: Outcome, privileged: boolean, what: string): void {
  expect(outcome.error, `${what}: expected a refusal, got success (${outcome.rowCount} rows)`).toBeDefined();
  expect(outcome.error!.code, `${what}: ${outcome.error!.message}`).toBe('42501');
  expect(outcome.error!.message, what).toMatch(privileged ? RLS_REFUSAL : PERMISSION_REFUSAL);
}

/** Zero rows where the role holds the privilege; a permission error where it does not. */
function expectNoRowsOrDenied(outcome: Outcome, privileged: boolean, what: string): void {
  if (privileged) {
    expect(outcome.error, `${what}: ${outcome.error?.message}`).toBeUndefined();
    expect(outcome.rowCount, what).toBe(0);
  } else {
    expectRefused(outcome, false, what);
  }
}

function updateWhereTenant(table: TableFacts, role: Role): string {
  const column = table.privileges[role].noopColumn ?? table.tenantColumn;
  return `UPDATE ${qualified(table.name)} SET ${ident(column)} = ${ident(column)} WHERE ${ident(table.tenantColumn)} = $1`;
}

function insertCopy(table: TableFacts): string {
  const columns = table.insertColumns.map(ident).join(', ');
  return `INSERT INTO ${qualified(table.name)} (${columns}) SELECT ${columns} FROM jsonb_populate_record(NULL::${qualified(table.name)}, $1::jsonb)`;
}

beforeAll(async () => {
  [A, B] = await Promise.all([seedTenant(admin, 'xt-a'), seedTenant(admin, 'xt-b')]);
  for (const target of TABLES) facts.set(target.table, await loadFacts(target));
});

afterAll(async () => {
  await Promise.all([admin.end(), pools.app_service.end(), pools.hasura_app.end()]);
});

const tableFacts = (name: string) => facts.get(name)!;

test('the catalog lists the tenant tables', () => {
  // A guard for the generator itself: an empty list would make every generated test vanish.
  expect(TABLES.map((t) => t.table)).toEqual(expect.arrayContaining(['tenants', 'tenant_members', 'projects']));
});

describe('seed coverage', () => {
  test.each(TABLES.map((t) => [t.table, t] as const))('%s has seed rows for both tenants', async (name) => {
    const table = tableFacts(name);
    const message = (tenant: string) =>
      `tenant table "${name}" has no rows for tenant ${tenant}: add seed rows for it in tests/fixtures/seed.ts (seedTenant and SEEDED_TABLES)`;
    expect(await adminCount(table, A), message('A')).toBeGreaterThan(0);
    expect(await adminCount(table, B), message('B')).toBeGreaterThan(0);
    expect(SEEDED_TABLES as readonly string[], message('A/B')).toContain(name);
  });
});

describe.each(ROLES)('%s with tenant A in context', (role) => {
  describe.each(TABLES.map((t) => t.table))('%s', (name) => {
    test('SELECT sees exactly A’s rows and none of B’s', async () => {
      const table = tableFacts(name);
      const expected = await adminCount(table, A);
      expect(expected).toBeGreaterThan(0);
      const seen = await asRole(role, A, async (client) => {
        const { rows } = await client.query<{ a: number; b: number; total: number }>(
          `SELECT count(*) FILTER (WHERE ${ident(table.tenantColumn)} = $1)::int AS a,
                  count(*) FILTER (WHERE ${ident(table.tenantColumn)} = $2)::int AS b,
                  count(*)::int AS total
             FROM ${qualified(table.name)}`,
          [A.tenantId, B.tenantId],
        );
        return rows[0]!;
      });
      expect(seen).toEqual({ a: expected, b: 0, total: expected });
    });

    test('UPDATE … WHERE tenant = B changes nothing', async () => {
      const table = tableFacts(name);
      const before = await snapshot(table, B);
      const outcome = await attempt(role, A, updateWhereTenant(table, role), [B.tenantId]);
      expectNoRowsOrDenied(outcome, table.privileges[role].noopColumn !== null, `${role} UPDATE ${name} of B`);
      expect(await snapshot(table, B)).toBe(before);
    });

    test('UPDATE moving one of A’s rows to B is refused', async () => {
      const table = tableFacts(name);
      const [beforeA, beforeB, row] = await Promise.all([snapshot(table, A), snapshot(table, B), oneRow(table, A)]);
      const key = table.keyColumns.length > 0 ? table.keyColumns : [table.tenantColumn];
      const keyList = key.map(ident).join(', ');
      const outcome = await attempt(
        role,
        A,
        `UPDATE ${qualified(table.name)} SET ${ident(table.tenantColumn)} = $1
          WHERE (${keyList}) = (SELECT ${keyList} FROM jsonb_populate_record(NULL::${qualified(table.name)}, $2::jsonb))`,
        [B.tenantId, JSON.stringify(row)],
      );
      expectRefused(outcome, table.privileges[role].updateTenant, `${role} UPDATE ${name} SET ${table.tenantColumn} = B`);
      expect(await snapshot(table, B)).toBe(beforeB);
      expect(await snapshot(table, A)).toBe(beforeA);
    });

    test('DELETE … WHERE tenant = B removes nothing', async () => {
      const table = tableFacts(name);
      const before = await snapshot(table, B);
      const outcome = await attempt(
        role,
        A,
        `DELETE FROM ${qualified(table.name)} WHERE ${ident(table.tenantColumn)} = $1`,
        [B.tenantId],
      );
      expectNoRowsOrDenied(outcome, table.privileges[role].delete, `${role} DELETE ${name} of B`);
      expect(await snapshot(table, B)).toBe(before);
    });

    test('INSERT of a copy of B’s row is refused with 42501', async () => {
      const table = tableFacts(name);
      const [before, row] = await Promise.all([snapshot(table, B), oneRow(table, B)]);
      const outcome = await attempt(role, A, insertCopy(table), [JSON.stringify(row)]);
      expectRefused(outcome, table.privileges[role].insert, `${role} INSERT into ${name} a row of B`);
      expect(await snapshot(table, B)).toBe(before);
    });
  });
});

describe('with no tenant context', () => {
  describe.each(TABLES.map((t) => t.table))('%s', (name) => {
    test('app_service sees no rows at all', async () => {
      const table = tableFacts(name);
      const seen = await asRole('app_service', null, async (client) => {
        const { rows } = await client.query<{ ab: number; total: number }>(
          `SELECT count(*) FILTER (WHERE ${ident(table.tenantColumn)} IN ($1, $2))::int AS ab, count(*)::int AS total
             FROM ${qualified(table.name)}`,
          [A.tenantId, B.tenantId],
        );
        return rows[0]!;
      });
      expect(seen).toEqual({ ab: 0, total: 0 });
    });

    test('app_service cannot insert', async () => {
      const table = tableFacts(name);
      const outcome = await attempt('app_service', null, insertCopy(table), [JSON.stringify(await oneRow(table, A))]);
      expectRefused(outcome, table.privileges.app_service.insert, `app_service INSERT into ${name} without context`);
    });

    test('hasura_app SELECT defers to Hasura’s permissions: it sees A’s and B’s rows', async () => {
      // The documented read-deferral contract (Hasura never sets a session for queries).
      // If this fails, the policy changed: update Hasura's permissions and this test together.
      const table = tableFacts(name);
      const [expectedA, expectedB] = await Promise.all([adminCount(table, A), adminCount(table, B)]);
      const seen = await asRole('hasura_app', null, async (client) => {
        const { rows } = await client.query<{ a: number; b: number }>(
          `SELECT count(*) FILTER (WHERE ${ident(table.tenantColumn)} = $1)::int AS a,
                  count(*) FILTER (WHERE ${ident(table.tenantColumn)} = $2)::int AS b
             FROM ${qualified(table.name)}`,
          [A.tenantId, B.tenantId],
        );
        return rows[0]!;
      });
      expect(seen).toEqual({ a: expectedA, b: expectedB });
      expect(expectedA).toBeGreaterThan(0);
    });

    test('hasura_app cannot insert, update or delete', async () => {
      const table = tableFacts(name);
      const before = await snapshot(table, A);
      const privileges = table.privileges.hasura_app;
      const insert = await attempt('hasura_app', null, insertCopy(table), [JSON.stringify(await oneRow(table, A))]);
      expectRefused(insert, privileges.insert, `hasura_app INSERT into ${name} without context`);
      const update = await attempt('hasura_app', null, updateWhereTenant(table, 'hasura_app'), [A.tenantId]);
      expectNoRowsOrDenied(update, privileges.noopColumn !== null, `hasura_app UPDATE ${name} without context`);
      const remove = await attempt('hasura_app', null, `DELETE FROM ${qualified(table.name)} WHERE ${ident(table.tenantColumn)} = $1`, [
        A.tenantId,
      ]);
      expectNoRowsOrDenied(remove, privileges.delete, `hasura_app DELETE ${name} without context`);
      expect(await snapshot(table, A)).toBe(before);
    });
  });
});

describe('the session setting', () => {
  test('a connection that ran SET LOCAL in an earlier committed transaction has no tenant afterwards', async () => {
    const { urls } = services();
    const client = new pg.Client({ connectionString: urls.app_service });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query(hasuraSetLocal(hasuraSessionJson(contextOf(A))));
      const inside = await client.query<{ tenant: string | null; n: number }>(
        'SELECT app.current_tenant_id()::text AS tenant, (SELECT count(*)::int FROM projects) AS n',
      );
      expect(inside.rows[0]).toEqual({ tenant: A.tenantId, n: A.projectIds.length });
      await client.query('COMMIT');

      const after = await client.query<{ raw: string | null; tenant: string | null; session: unknown; n: number }>(
        `SELECT current_setting('hasura.user', true) AS raw, app.current_tenant_id()::text AS tenant,
                app.session() AS session, (SELECT count(*)::int FROM projects) AS n`,
      );
      // The placeholder survives the transaction with an empty value, not NULL: hence nullif in app.session().
      expect(after.rows[0]).toEqual({ raw: '', tenant: null, session: null, n: 0 });
    } finally {
      await client.end();
    }
  });

  test('the per-variable parameter name some write-ups use is not set by Hasura or the services', async () => {
    for (const role of ROLES) {
      const seen = await asRole(role, A, async (client) => {
        const { rows } = await client.query<{ wrong: string | null; tenant: string | null }>(
          `SELECT current_setting('hasura.user.x-hasura-tenant-id', true) AS wrong, app.current_tenant_id()::text AS tenant`,
        );
        return rows[0]!;
      });
      expect(seen, role).toEqual({ wrong: null, tenant: A.tenantId });
    }
  });
});
