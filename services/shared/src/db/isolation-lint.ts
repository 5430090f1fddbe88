import type pg from 'pg';

/** The roles that must never see across tenants. */
export const ISOLATED_ROLES = ['app_service', 'hasura_app'] as const;
const COMMANDS = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const;
/** Calls a policy must make inside a (SELECT …), so they run once per statement, not per row. */
const HELPER_CALL = /\b(app\.[a-z_]+|current_setting)\s*\(/g;
/**
 * The session tenant as Postgres deparses it: the expression app.enable_tenant_isolation()
 * writes out, or the app.current_tenant_id() helper a hand-written policy may use.
 */
const SESSION_TENANT_FORMS = [
  "( SELECT (((NULLIF(current_setting('hasura.user'::text, true), ''::text))::jsonb ->> 'x-hasura-tenant-id'::text))::uuid AS uuid)",
  '( SELECT app.current_tenant_id() AS current_tenant_id)',
];
const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export interface IsolationProblem {
  table: string;
  rule:
    | 'rls-disabled'
    | 'rls-not-forced'
    | 'policy-missing'
    | 'policy-without-tenant'
    | 'helper-unwrapped'
    | 'index-missing'
    | 'foreign-key-missing'
    | 'role-can-bypass'
    | 'deleted-tenant-writable'
    | 'definer-search-path'
    | 'function-public-execute'
    | 'platform-column-writable';
  message: string;
}

export interface TenantTable {
  schema: string;
  table: string;
  /** `tenant_id`, or `id` for the tenants table itself. */
  tenantColumn: string;
}

/** Every table that holds tenant rows: each with a tenant_id column, and tenants itself. */
export async function listTenantTables(client: pg.ClientBase, schema = 'public'): Promise<TenantTable[]> {
  const { rows } = await client.query<{ table: string; tenant_column: string }>(
    `SELECT c.relname AS table, CASE WHEN c.relname = 'tenants' THEN 'id' ELSE 'tenant_id' END AS tenant_column
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
        AND (c.relname = 'tenants' OR EXISTS (
              SELECT 1 FROM pg_attribute a
               WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
      ORDER BY c.relname`,
    [schema],
  );
  return rows.map((row) => ({ schema, table: row.table, tenantColumn: row.tenant_column }));
}

interface TableFacts {
  table: string;
  rls: boolean;
  forced: boolean;
  owner: string;
  indexed: boolean;
  cascadingForeignKey: boolean;
}

async function tableFacts(client: pg.ClientBase, target: TenantTable): Promise<TableFacts> {
  const { rows } = await client.query<TableFacts>(
    `SELECT c.relname AS table,
            c.relrowsecurity AS rls,
            c.relforcerowsecurity AS forced,
            pg_get_userbyid(c.relowner) AS owner,
            EXISTS (
              SELECT 1 FROM pg_index i
               WHERE i.indrelid = c.oid AND i.indpred IS NULL AND i.indisvalid
                 AND i.indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = c.oid AND attname = $3)
            ) AS indexed,
            EXISTS (
              SELECT 1 FROM pg_constraint k
               WHERE k.conrelid = c.oid AND k.contype = 'f' AND k.confdeltype = 'c'
                 AND k.confrelid = (SELECT oid FROM pg_class WHERE relname = 'tenants' AND relnamespace = c.relnamespace)
                 AND k.conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = c.oid AND attname = $3)]
            ) AS "cascadingForeignKey"
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [target.schema, target.table, target.tenantColumn],
  );
  return rows[0]!;
}

/**
 * A deleted tenant's data is read-only (hasura/migrations/default/1795900400000_tenant_lifecycle):
 * the tenants row has the lifecycle trigger on UPDATE, every other tenant table the trigger
 * refusing INSERT, UPDATE and DELETE, as a row trigger (app.enable_tenant_isolation adds it).
 * The audit log stays writable: it records the deletion, the restore and the purge.
 */
const WRITABLE_WHILE_DELETED = new Set(['audit_log']);
const ROW_TRIGGER = 1;
const ON_INSERT = 4;
const ON_DELETE = 8;
const ON_UPDATE = 16;

async function guardsDeletedTenant(client: pg.ClientBase, target: TenantTable): Promise<boolean> {
  const [guard, events] =
    target.table === 'tenants'
      ? ['app.guard_tenant_lifecycle()', ROW_TRIGGER | ON_UPDATE]
      : ['app.refuse_deleted_tenant_writes()', ROW_TRIGGER | ON_INSERT | ON_UPDATE | ON_DELETE];
  const { rows } = await client.query<{ guarded: boolean }>(
    `SELECT EXISTS (
              SELECT 1 FROM pg_trigger t
               JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2 AND NOT t.tgisinternal AND t.tgenabled <> 'D'
                AND t.tgfoid = to_regprocedure($3) AND (t.tgtype & $4::int) = $4::int
            ) AS guarded`,
    [target.schema, target.table, guard, events],
  );
  return rows[0]!.guarded;
}

interface PolicyFacts {
  name: string;
  command: string;
  roles: string[];
  qual: string | null;
  withCheck: string | null;
}

async function policies(client: pg.ClientBase, target: TenantTable): Promise<PolicyFacts[]> {
  const { rows } = await client.query<PolicyFacts>(
    `SELECT policyname AS name, cmd AS command, roles::text[] AS roles, qual, with_check AS "withCheck"
       FROM pg_policies WHERE schemaname = $1 AND tablename = $2`,
    [target.schema, target.table],
  );
  return rows;
}

/** The [start, end) spans of the (SELECT …) sub-queries in a deparsed expression. */
function subqueries(expression: string): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  for (const match of expression.matchAll(/\(\s*SELECT\b/gi)) {
    let depth = 0;
    for (let index = match.index; index < expression.length; index += 1) {
      if (expression[index] === '(') depth += 1;
      else if (expression[index] === ')' && --depth === 0) {
        spans.push([match.index, index + 1]);
        break;
      }
    }
  }
  return spans;
}

/** Calls to helpers or current_setting outside any (SELECT …): evaluated per row. */
export function unwrappedHelperCalls(expression: string): string[] {
  const spans = subqueries(expression);
  return [...expression.matchAll(HELPER_CALL)]
    .filter((match) => !spans.some(([start, end]) => match.index > start && match.index < end))
    .map((match) => match[1]!);
}

function checkPolicies(target: TenantTable, rows: PolicyFacts[]): IsolationProblem[] {
  const problems: IsolationProblem[] = [];
  const name = target.table;
  const sessionTenant = new RegExp(`\\b${target.tenantColumn} = (${SESSION_TENANT_FORMS.map(escapeRegExp).join('|')})`);
  for (const role of ISOLATED_ROLES) {
    for (const command of COMMANDS) {
      const applicable = rows.filter(
        (policy) =>
          (policy.command === command || policy.command === 'ALL') &&
          (policy.roles.includes(role) || policy.roles.includes('public')),
      );
      if (applicable.length === 0) {
        problems.push({ table: name, rule: 'policy-missing', message: `${name}: no ${command} policy for ${role}` });
      }
      for (const policy of applicable) {
        // Permissive policies are OR-ed: any one of them without the tenant test opens the table.
        const expressions = [policy.qual, policy.withCheck].filter((text): text is string => text !== null);
        if (!expressions.every((text) => sessionTenant.test(text))) {
          problems.push({
            table: name,
            rule: 'policy-without-tenant',
            message: `${name}: policy ${policy.name} (${command}, ${role}) does not compare ${target.tenantColumn} with the session tenant`,
          });
        }
      }
    }
  }
  for (const policy of rows) {
    for (const text of [policy.qual, policy.withCheck]) {
      if (text === null) continue;
      const calls = unwrappedHelperCalls(text);
      if (calls.length > 0) {
        problems.push({
          table: name,
          rule: 'helper-unwrapped',
          message: `${name}: policy ${policy.name} calls ${calls.join(', ')} per row; wrap it as (SELECT ${calls[0]}(…))`,
        });
      }
    }
  }
  return dedupe(problems);
}

function dedupe(problems: IsolationProblem[]): IsolationProblem[] {
  const seen = new Set<string>();
  return problems.filter((problem) => !seen.has(problem.message) && seen.add(problem.message) !== undefined);
}

async function checkRoles(client: pg.ClientBase, tables: TenantTable[], schema: string): Promise<IsolationProblem[]> {
  const { rows } = await client.query<{ role: string; via: string; reason: string }>(
    `SELECT r.rolname AS role, b.rolname AS via,
            CASE WHEN b.rolsuper THEN 'superuser' WHEN b.rolbypassrls THEN 'BYPASSRLS' ELSE 'owner of ' || t.relname END AS reason
       FROM pg_roles r
       JOIN pg_roles b ON pg_has_role(r.oid, b.oid, 'MEMBER')
       LEFT JOIN pg_class t ON t.relowner = b.oid AND t.relname = ANY($2::text[])
                           AND t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $3)
      WHERE r.rolname = ANY($1::text[]) AND (b.rolsuper OR b.rolbypassrls OR t.oid IS NOT NULL)`,
    [ISOLATED_ROLES, tables.map((table) => table.table), schema],
  );
  return rows.map((row) => ({
    table: '*',
    rule: 'role-can-bypass' as const,
    message:
      row.role === row.via
        ? `role ${row.role} is ${row.reason}: row-level security does not bind it`
        : `role ${row.role} is a member of ${row.via}, which is ${row.reason}`,
  }));
}

/**
 * Columns of a tenant's own row that only the platform moves: the CLI (platform_admin) and
 * SECURITY DEFINER functions that audit each move (the billing definers, app.restore_tenant).
 * A service or Hasura writing them directly would pick its own plan, limits or lifecycle
 * within its tenant, where row-level security cannot help. Checked where they exist.
 */
export const PLATFORM_TENANT_COLUMNS = [
  'slug', 'plan_id', 'status', 'status_changed_at', 'suspended_at', 'suspension_reason', 'deleted_at', 'purge_after',
  'max_users', 'max_storage_bytes', 'max_api_requests_month', 'stripe_customer_id', 'feature_overrides',
] as const;

async function checkPlatformColumns(client: pg.ClientBase, schema: string): Promise<IsolationProblem[]> {
  const { rows } = await client.query<{ role: string; column: string }>(
    `SELECT r.role, a.attname AS column
       FROM unnest($1::text[]) AS r(role)
       JOIN pg_attribute a ON a.attrelid = to_regclass(quote_ident($3) || '.tenants') AND a.attnum > 0 AND NOT a.attisdropped
      WHERE a.attname = ANY($2::text[]) AND has_column_privilege(r.role, a.attrelid, a.attnum, 'UPDATE')
      ORDER BY 1, 2`,
    [ISOLATED_ROLES, PLATFORM_TENANT_COLUMNS, schema],
  );
  return rows.map(({ role, column }) => ({
    table: 'tenants',
    rule: 'platform-column-writable' as const,
    message: `tenants: ${role} may UPDATE ${column}, which only the platform moves (platform_admin, or a definer that audits it); grant it the other columns only`,
  }));
}

/** The schemas whose functions are ours: none of them may be executable by PUBLIC. */
export const FUNCTION_SCHEMAS = ['app', 'public'] as const;

/**
 * The schemas a search_path lists, in order, as Postgres stores it in proconfig: names
 * separated by commas, a double-quoted name keeping its commas, spaces and case ("" is a
 * quote), so `"pg_catalog, pg_temp"` is one schema, not two.
 */
export function searchPathSchemas(setting: string): string[] {
  const schemas: string[] = [];
  let name = '';
  let inQuotes = false;
  for (let index = 0; index < setting.length; index += 1) {
    const character = setting[index]!;
    if (inQuotes) {
      if (character !== '"') name += character;
      else if (setting[index + 1] === '"') name += setting[++index];
      else inQuotes = false;
    } else if (character === '"') inQuotes = true;
    else if (character === ',') {
      schemas.push(name);
      name = '';
    } else if (!/\s/.test(character)) name += character;
  }
  schemas.push(name);
  return schemas.filter((schema) => schema !== '');
}

/**
 * The SECURITY DEFINER and EXECUTE rules (docs/architecture.md, "SECURITY DEFINER helpers"):
 * - a definer's search_path must name pg_temp last: otherwise Postgres searches pg_temp
 *   FIRST for tables, and any caller who may create a temporary table hands the definer
 *   its own audit_log or tenant_members. Checked in every schema but the system's own.
 * - no function of ours is executable by PUBLIC. A NULL proacl is the default ACL, which
 *   grants EXECUTE to PUBLIC: acldefault() spells it out. Functions an extension installs
 *   are the extension's, not ours.
 * The `table` of each problem is the function's signature.
 */
export async function lintFunctionPrivileges(client: pg.ClientBase): Promise<IsolationProblem[]> {
  const definers = await client.query<{ signature: string; search_path: string | null }>(
    `SELECT p.oid::regprocedure::text AS signature,
            (SELECT substr(setting, length('search_path=') + 1) FROM unnest(p.proconfig) AS setting
              WHERE setting LIKE 'search_path=%') AS search_path
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      ORDER BY 1`,
  );
  const problems: IsolationProblem[] = [];
  for (const { signature, search_path: searchPath } of definers.rows) {
    const schemas = searchPath === null ? [] : searchPathSchemas(searchPath);
    if (schemas.at(-1) === 'pg_temp') continue;
    problems.push({
      table: signature,
      rule: 'definer-search-path',
      message:
        searchPath === null
          ? `${signature}: SECURITY DEFINER without its own search_path; set search_path = pg_catalog, public, pg_temp`
          : `${signature}: SECURITY DEFINER with search_path = ${searchPath}, which does not end with pg_temp, so a temporary table shadows its tables`,
    });
  }

  const publicExecute = await client.query<{ signature: string }>(
    `SELECT p.oid::regprocedure::text AS signature
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = ANY($1::text[])
        AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS acl
                     WHERE acl.grantee = 0 AND acl.privilege_type = 'EXECUTE')
        AND NOT EXISTS (SELECT 1 FROM pg_depend d
                         WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
      ORDER BY 1`,
    [FUNCTION_SCHEMAS],
  );
  for (const { signature } of publicExecute.rows) {
    problems.push({
      table: signature,
      rule: 'function-public-execute',
      message: `${signature}: EXECUTE is granted to PUBLIC; revoke it and grant it to the roles that call it`,
    });
  }
  return problems;
}

/**
 * Checks that every tenant table is isolated the way docs/architecture.md ("Two layers of isolation") requires. An empty
 * list means: RLS enabled and forced, a policy per command for both roles, each comparing
 * the tenant column with the wrapped session tenant, a leading tenant index, a cascading
 * foreign key to tenants, writes refused while the tenant is deleted, and no way for the two roles to step around any of it: not as
 * owners or BYPASSRLS roles, nor through a SECURITY DEFINER function (lintFunctionPrivileges).
 */
export async function lintTenantIsolation(client: pg.ClientBase, schema = 'public'): Promise<IsolationProblem[]> {
  const tables = await listTenantTables(client, schema);
  const problems: IsolationProblem[] = [];
  for (const target of tables) {
    const facts = await tableFacts(client, target);
    const name = target.table;
    if (!facts.rls) problems.push({ table: name, rule: 'rls-disabled', message: `${name}: row-level security is not enabled` });
    if (!facts.forced) {
      problems.push({ table: name, rule: 'rls-not-forced', message: `${name}: row-level security is not forced, so its owner bypasses it` });
    }
    if (!facts.indexed) {
      problems.push({ table: name, rule: 'index-missing', message: `${name}: no index leads with ${target.tenantColumn}` });
    }
    if (target.table !== 'tenants' && !facts.cascadingForeignKey) {
      problems.push({
        table: name,
        rule: 'foreign-key-missing',
        message: `${name}: ${target.tenantColumn} is not a foreign key to tenants(id) ON DELETE CASCADE`,
      });
    }
    if (!WRITABLE_WHILE_DELETED.has(name) && !(await guardsDeletedTenant(client, target))) {
      problems.push({
        table: name,
        rule: 'deleted-tenant-writable',
        message: `${name}: nothing refuses writes while its tenant is deleted; create it with app.enable_tenant_isolation('${name}'), which adds the trigger`,
      });
    }
    problems.push(...checkPolicies(target, await policies(client, target)));
  }
  problems.push(...(await checkRoles(client, tables, schema)));
  problems.push(...(await checkPlatformColumns(client, schema)));
  problems.push(...(await lintFunctionPrivileges(client)));
  return problems;
}
