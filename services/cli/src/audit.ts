import { adminPool } from './context.js';
import { CliError } from './errors.js';
import { findTenant } from './tenants.js';

export interface AuditEntry {
  id: number;
  created_at: Date;
  actor: string;
  actor_user_id: string | null;
  db_role: string;
  action: string;
  target_type: string;
  target_id: string | null;
  before: unknown;
  after: unknown;
  reason: string | null;
  request_id: string | null;
}

const DURATION = /^(\d{1,6})([mhdw])$/;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/**
 * --since as an operator types it: a duration back from now (30m, 24h, 7d, 2w) or a
 * date / timestamp (2026-11-30, 2026-11-30T09:00:00Z). Anything else is a usage error.
 */
export function parseSince(text: string, now = Date.now()): Date {
  const duration = DURATION.exec(text.trim());
  if (duration) return new Date(now - Number(duration[1]) * UNIT_MS[duration[2] as keyof typeof UNIT_MS]);
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text.trim())) {
    const date = new Date(text.trim());
    if (!Number.isNaN(date.getTime())) return date;
  }
  throw new CliError(`--since '${text}' is neither a duration (30m, 24h, 7d, 2w) nor a date (2026-11-30 or 2026-11-30T09:00:00Z)`, 2);
}

/** The shape audit_log.action has (its CHECK): `table.operation`, lower case. */
const ACTION = /^[a-z_]+(\.[a-z_]+)*$/;

export interface AuditFilter {
  /** A tenant's slug or id; undefined for the platform entries (no tenant: users, purges). */
  tenant?: string;
  since?: string;
  /** An exact action (tenant_members.insert) or a prefix of dotted parts (tenant_members). */
  action?: string;
  limit: number;
}

/** Newest first. Platform entries are those without a tenant: user creation, staff changes, purges. */
export async function listAudit(filter: AuditFilter): Promise<AuditEntry[]> {
  if (filter.action !== undefined && !ACTION.test(filter.action)) {
    throw new CliError(`--action '${filter.action}' is not an action — give one such as tenant_members.insert, or a prefix such as tenant_members`, 2);
  }
  const since = filter.since === undefined ? null : parseSince(filter.since);
  const tenantId = filter.tenant === undefined ? null : (await findTenant(filter.tenant)).id;
  const { rows } = await adminPool().query<AuditEntry>(
    `SELECT id::float8 AS id, created_at, actor, actor_user_id, db_role, action, target_type, target_id, before, after, reason, request_id
       FROM audit_log
      WHERE tenant_id IS NOT DISTINCT FROM $1::uuid
        AND ($2::timestamptz IS NULL OR created_at >= $2)
        AND ($3::text IS NULL OR action = $3 OR starts_with(action, $3 || '.'))
      ORDER BY created_at DESC, id DESC
      LIMIT $4`,
    [tenantId, since, filter.action ?? null, filter.limit],
  );
  return rows;
}
