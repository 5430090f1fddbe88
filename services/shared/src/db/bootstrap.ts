import pg from 'pg';

/**
 * The database roles. Passwords come from the environment at bootstrap time only.
 * - owner: owns every object and runs migrations; not a superuser.
 * - hasura_app / app_service: what Hasura and the services connect as; never owners,
 *   never superusers, never BYPASSRLS, so row-level security always applies to them.
 * - platform_admin: the CLI's role; crosses tenants (BYPASSRLS), every change audited.
 * - app_definer: owns the SECURITY DEFINER helpers; nobody logs in as it.
 */
export const LOGIN_ROLES = ['tenantry_owner', 'hasura_app', 'app_service', 'platform_admin'] as const;
export type LoginRole = (typeof LOGIN_ROLES)[number];

const ROLE_ATTRIBUTES: Record<LoginRole | 'app_definer', string> = {
  tenantry_owner: 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS',
  hasura_app: 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS',
  app_service: 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS',
  platform_admin: 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS',
  app_definer: 'NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS',
};

export interface BootstrapOptions {
  /** A superuser connection to the server (any database on it). */
  adminUrl: string;
  database: string;
  passwords: Record<LoginRole, string>;
}

/**
 * Creates or updates the roles and the database. Safe to run again: it only converges.
 * Postgres escapes the identifiers and passwords itself through format(%I, %L).
 */
export async function bootstrapDatabase({ adminUrl, database, passwords }: BootstrapOptions): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'tenantry-bootstrap' });
  await client.connect();
  try {
    const execute = async (template: string, ...values: string[]) => {
      const { rows } = await client.query<{ statement: string }>(`SELECT format(${template}) AS statement`, values);
      await client.query(rows[0]!.statement);
    };
    for (const [role, attributes] of Object.entries(ROLE_ATTRIBUTES)) {
      const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
      if (exists.rowCount === 0) await execute(`'CREATE ROLE %I', $1::text`, role);
      await execute(`'ALTER ROLE %I ${attributes}', $1::text`, role);
      const password = passwords[role as LoginRole];
      if (password !== undefined) await execute(`'ALTER ROLE %I PASSWORD %L', $1::text, $2::text`, role, password);
    }
    // The owner hands helper functions to app_definer, which needs membership.
    await client.query('GRANT app_definer TO tenantry_owner');

    const present = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (present.rowCount === 0) await execute(`'CREATE DATABASE %I OWNER tenantry_owner', $1::text`, database);
    await execute(`'REVOKE ALL ON DATABASE %I FROM PUBLIC', $1::text`, database);
    await execute(`'GRANT CONNECT ON DATABASE %I TO hasura_app, app_service, platform_admin', $1::text`, database);
    // No temporary tables: a SECURITY DEFINER function whose search_path misses pg_temp reads
    // a caller's temporary table before ours, and nothing of ours needs one. Revoked, not only
    // left out, so running this again takes it from a database bootstrapped before.
    await execute(`'REVOKE TEMPORARY ON DATABASE %I FROM hasura_app, app_service, platform_admin', $1::text`, database);
  } finally {
    await client.end();
  }
}

/**
 * Hasura's metadata database: a database of its own, owned by hasura_app, so Hasura's
 * catalog (hdb_catalog) never lives beside the tenant data and hasura_app needs no CREATE
 * right on the application database. Runs after bootstrapDatabase (the role must exist);
 * safe to run again.
 */
export async function bootstrapHasuraMetadataDatabase({ adminUrl, database }: { adminUrl: string; database: string }): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'tenantry-bootstrap' });
  await client.connect();
  try {
    const execute = async (template: string, ...values: string[]) => {
      const { rows } = await client.query<{ statement: string }>(`SELECT format(${template}) AS statement`, values);
      await client.query(rows[0]!.statement);
    };
    const present = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (present.rowCount === 0) await execute(`'CREATE DATABASE %I OWNER hasura_app', $1::text`, database);
    else await execute(`'ALTER DATABASE %I OWNER TO hasura_app', $1::text`, database);
    await execute(`'REVOKE ALL ON DATABASE %I FROM PUBLIC', $1::text`, database);
  } finally {
    await client.end();
  }
}

/** The URL for `role` on `database`, derived from the admin URL's host and port. */
export function roleUrl(adminUrl: string, role: LoginRole, password: string, database: string): string {
  const url = new URL(adminUrl);
  url.username = encodeURIComponent(role);
  url.password = encodeURIComponent(password);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}
