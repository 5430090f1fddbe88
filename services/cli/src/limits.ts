import type pg from 'pg';
import { inTransaction } from './context.js';
import { CliError, explainDatabaseError } from './errors.js';
import { namedTenant } from './plans.js';
import { domainsOf, findTenant, purgeTenantFromEdges } from './tenants.js';

/** The per-tenant overrides `tenant limits set` changes: tenants columns, NULL = the plan's. */
export const LIMIT_COLUMNS = ['max_api_requests_month', 'max_users', 'max_storage_bytes'] as const;
export type LimitColumn = (typeof LIMIT_COLUMNS)[number];

/** The word that clears an override, so the plan's limit applies again. */
export const PLAN_LIMIT = 'plan';

interface LimitSpec {
  flag: string;
  label: string;
  /** Past this a value is a typo, not a contract: users is an int column, the edge's counters are Lua doubles. */
  max: bigint;
  units: boolean;
}

export const LIMIT_SPECS: Record<LimitColumn, LimitSpec> = {
  max_api_requests_month: { flag: '--api-requests-month', label: 'api requests/month', max: 1_000_000_000_000n, units: false },
  max_users: { flag: '--users', label: 'users', max: 1_000_000n, units: false },
  max_storage_bytes: { flag: '--storage', label: 'storage bytes', max: 1n << 50n, units: true },
};

const STORAGE_UNITS: Record<string, bigint> = {
  b: 1n,
  kb: 1000n,
  mb: 1000n ** 2n,
  gb: 1000n ** 3n,
  tb: 1000n ** 4n,
  pb: 1000n ** 5n,
  kib: 1n << 10n,
  mib: 1n << 20n,
  gib: 1n << 30n,
  tib: 1n << 40n,
  pib: 1n << 50n,
};

/** An override as typed: a whole number (storage: with an optional unit), or `plan`; null clears it. */
export function parseLimitValue(column: LimitColumn, text: string): number | null {
  const spec = LIMIT_SPECS[column];
  const trimmed = text.trim();
  if (trimmed.toLowerCase() === PLAN_LIMIT) return null;
  const range = `a whole number from 1 to ${spec.max}${spec.units ? ' (bytes, or with a unit: 500MB, 10GiB, 1TiB)' : ''}, or '${PLAN_LIMIT}' for the plan's limit`;
  const match = (spec.units ? /^(\d+)\s*([a-z]+)?$/i : /^(\d+)$/).exec(trimmed);
  const unit = match?.[2] === undefined ? 1n : STORAGE_UNITS[match[2].toLowerCase()];
  if (!match || unit === undefined) throw new CliError(`${spec.flag} '${text}' is not ${range}`, 2);
  const value = BigInt(match[1]!) * unit;
  if (value < 1n || value > spec.max) throw new CliError(`${spec.flag} '${text}' is out of range: give ${range}`, 2);
  return Number(value);
}

export type LimitChanges = Partial<Record<LimitColumn, number | null>>;

export interface LimitInForce {
  /** What the edge and the database enforce: the override, else the plan's; null is unlimited. */
  in_force: number | null;
  override: number | null;
  plan: number | null;
}

export interface TenantLimits {
  tenant_id: string;
  slug: string;
  plan_id: string;
  limits: Record<LimitColumn, LimitInForce>;
}

export interface LimitsChange extends TenantLimits {
  changed: boolean;
  /** Each override the command changed, before and after (null = the plan's). */
  changes: Partial<Record<LimitColumn, { before: number | null; after: number | null }>>;
}

interface LimitsRow {
  plan_id: string;
  override_api: number | null;
  override_users: number | null;
  override_storage: number | null;
  plan_api: number | null;
  plan_users: number | null;
  plan_storage: number | null;
  force_api: number | null;
  force_users: number | null;
  force_storage: number | null;
}

/** The overrides, the plan's limits and what app.tenant_limits (the enforcer) makes of them. */
export async function readTenantLimits(db: pg.Pool | pg.PoolClient, tenant: { id: string; slug: string }): Promise<TenantLimits> {
  const { rows } = await db.query<LimitsRow>(
    `SELECT t.plan_id,
            t.max_api_requests_month::float8 AS override_api, t.max_users AS override_users, t.max_storage_bytes::float8 AS override_storage,
            p.max_api_requests_month::float8 AS plan_api, p.max_users AS plan_users, p.max_storage_bytes::float8 AS plan_storage,
            l.max_api_requests_month::float8 AS force_api, l.max_users AS force_users, l.max_storage_bytes::float8 AS force_storage
       FROM tenants t JOIN plans p ON p.id = t.plan_id CROSS JOIN LATERAL app.tenant_limits(t.id) AS l
      WHERE t.id = $1`,
    [tenant.id],
  );
  const row = rows[0]!;
  return {
    tenant_id: tenant.id,
    slug: tenant.slug,
    plan_id: row.plan_id,
    limits: {
      max_api_requests_month: { in_force: row.force_api, override: row.override_api, plan: row.plan_api },
      max_users: { in_force: row.force_users, override: row.override_users, plan: row.plan_users },
      max_storage_bytes: { in_force: row.force_storage, override: row.override_storage, plan: row.plan_storage },
    },
  };
}

/**
 * Sets or clears a tenant's limit overrides in one audited UPDATE of tenants (one
 * tenants.update entry with the reason), then tells the edges to forget the tenant so its
 * new monthly quota holds within a second. Overrides already as asked are left alone:
 * no update, no audit entry, no purge.
 */
export async function setTenantLimits(reference: string, changes: LimitChanges, reason: string): Promise<LimitsChange> {
  if (reason.trim().length === 0) throw new CliError('--reason is empty — say why, e.g. --reason "contract 2026-114: 5M requests"', 2);
  const columns = LIMIT_COLUMNS.filter((column) => column in changes);
  if (columns.length === 0) {
    throw new CliError(`no limit to set — give at least one of ${LIMIT_COLUMNS.map((column) => LIMIT_SPECS[column].flag).join(', ')}`, 2);
  }
  try {
    const { result, domains } = await inTransaction(
      async (client) => {
        const tenant = await namedTenant(reference, client, true);
        const before = await readTenantLimits(client, tenant);
        const changed = columns.filter((column) => before.limits[column].override !== changes[column]);
        if (changed.length > 0) {
          const assignments = changed.map((column, index) => `${column} = $${index + 2}`).join(', ');
          await client.query(`UPDATE tenants SET ${assignments} WHERE id = $1`, [tenant.id, ...changed.map((column) => changes[column])]);
        }
        const after = await readTenantLimits(client, await findTenant(tenant.id, client));
        return {
          result: {
            ...after,
            changed: changed.length > 0,
            changes: Object.fromEntries(
              changed.map((column) => [column, { before: before.limits[column].override, after: after.limits[column].override }]),
            ),
          },
          domains: await domainsOf(client, tenant.id),
        };
      },
      { reason },
    );
    if (result.changed) await purgeTenantFromEdges({ id: result.tenant_id, slug: result.slug }, domains);
    return result;
  } catch (error) {
    throw explainDatabaseError(error, { tenant: reference });
  }
}

/** The limits in force of a tenant the operator named (unknown: exit 2). */
export async function showTenantLimits(reference: string): Promise<TenantLimits> {
  return inTransaction(async (client) => readTenantLimits(client, await namedTenant(reference, client)));
}

/** 10737418240 → "10 GiB": storage in a unit an operator reads at a glance. */
export function humanBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}
