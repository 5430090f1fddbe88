import type pg from 'pg';

/** The application roles whose privileges a migration may change. */
const APPLICATION_ROLES = ['hasura_app', 'app_service', 'platform_admin', 'app_definer'];

/**
 * What a migration can change, as comparable text: columns (with defaults), constraints,
 * indexes, triggers, policies, functions (body, settings, owner), composite types, and every
 * application role's privileges on tables, columns and functions. A down migration is right
 * when the snapshot after it equals the one before its up.
 */
export type SchemaSnapshot = Record<
  'columns' | 'constraints' | 'indexes' | 'triggers' | 'policies' | 'functions' | 'tablePrivileges' | 'columnPrivileges' | 'functionPrivileges',
  string[]
>;

export async function schemaSnapshot(client: pg.Client | pg.Pool): Promise<SchemaSnapshot> {
  const lines = async (sql: string, params: unknown[] = []) => (await client.query<{ line: string }>(sql, params)).rows.map((row) => row.line);
  const ours = "n.nspname IN ('public', 'app')";
  return {
    columns: await lines(
      `SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS line
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE ${ours} AND c.relkind IN ('r', 'v', 'c') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1`,
    ),
    constraints: await lines(
      `SELECT c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid) AS line
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${ours} ORDER BY 1`,
    ),
    indexes: await lines(`SELECT indexdef AS line FROM pg_indexes WHERE schemaname IN ('public', 'app') ORDER BY 1`),
    triggers: await lines(`SELECT pg_get_triggerdef(t.oid) AS line FROM pg_trigger t WHERE NOT t.tgisinternal ORDER BY 1`),
    policies: await lines("SELECT tablename || ' ' || policyname || ' ' || coalesce(qual, '') AS line FROM pg_policies WHERE schemaname = 'public' ORDER BY 1"),
    functions: await lines(
      `SELECT p.oid::regprocedure::text || ' ' || md5(pg_get_functiondef(p.oid)) || ' ' || pg_get_userbyid(p.proowner) AS line
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${ours} ORDER BY 1`,
    ),
    tablePrivileges: await lines(
      `SELECT r.role || ' ' || c.relname || ' ' || p.privilege AS line
         FROM unnest($1::text[]) AS r(role), pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
              unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) AS p(privilege)
        WHERE ${ours} AND c.relkind = 'r' AND has_table_privilege(r.role, c.oid, p.privilege) ORDER BY 1`,
      [APPLICATION_ROLES],
    ),
    columnPrivileges: await lines(
      `SELECT r.role || ' ' || c.relname || '.' || a.attname || ' ' || p.privilege AS line
         FROM unnest($1::text[]) AS r(role), pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace,
              unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) AS p(privilege)
        WHERE ${ours} AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND has_column_privilege(r.role, c.oid, a.attnum, p.privilege) ORDER BY 1`,
      [APPLICATION_ROLES],
    ),
    functionPrivileges: await lines(
      `SELECT r.role || ' ' || p.oid::regprocedure::text AS line
         FROM unnest($1::text[]) AS r(role), pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE ${ours} AND has_function_privilege(r.role, p.oid, 'EXECUTE') ORDER BY 1`,
      [APPLICATION_ROLES],
    ),
  };
}
