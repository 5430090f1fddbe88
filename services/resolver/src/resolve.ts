import type { Pool } from 'pg';

/** What the edge caches about a tenant. */
export interface TenantResolution {
  id: string;
  slug: string;
  status: 'active' | 'suspended' | 'deleted';
  plan: string;
  rate_limit_rps: number;
  max_api_requests_month: number | null;
  /** Why a suspended tenant is suspended (`billing` lets its owners reach the billing portal); null otherwise. */
  suspension_reason: string | null;
  /** Whether the plan in force includes custom domains: without it the edge refuses the tenant's domains, and says why. */
  custom_domains: boolean;
  /**
   * The month's API requests already in tenant_usage (UTC month): the edge creates a month's
   * Redis counter from it, so a Redis that lost its data never restarts a tenant at zero.
   */
  api_requests_month_used: number;
  /**
   * The UTC month (YYYY-MM) api_requests_month_used counts, from the same statement's clock:
   * an answer cached across a month's end must not seed the new month with the old one's count.
   */
  usage_month: string;
}

export type ResolveBy = 'id' | 'slug' | 'domain';

// now() is the statement's (the transaction's) time, the one the resolution's count used.
const USAGE_MONTH = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM') AS usage_month";

const QUERIES: Record<ResolveBy, string> = {
  id: `SELECT *, ${USAGE_MONTH} FROM app.resolve_tenant_by_id($1)`,
  slug: `SELECT *, ${USAGE_MONTH} FROM app.resolve_tenant_by_slug($1)`,
  domain: `SELECT *, ${USAGE_MONTH} FROM app.resolve_tenant_by_domain($1)`,
};

export async function resolveTenant(pool: Pool, by: ResolveBy, value: string): Promise<TenantResolution | null> {
  const { rows } = await pool.query<{
    id: string;
    slug: string;
    status: TenantResolution['status'];
    plan_id: string;
    rate_limit_rps: number;
    max_api_requests_month: string | null;
    suspension_reason: string | null;
    custom_domains: boolean | null;
    api_requests_month_used: string | null;
    usage_month: string;
  }>({ name: `resolve-tenant-by-${by}`, text: QUERIES[by], values: [value] });
  const row = rows[0];
  if (!row) return null;
  return {
    id: row.id,
    slug: row.slug,
    status: row.status,
    plan: row.plan_id,
    rate_limit_rps: row.rate_limit_rps,
    max_api_requests_month: row.max_api_requests_month === null ? null : Number(row.max_api_requests_month),
    suspension_reason: row.suspension_reason,
    custom_domains: row.custom_domains === true,
    api_requests_month_used: Number(row.api_requests_month_used ?? 0),
    usage_month: row.usage_month,
  };
}

/** Whether a token's user still belongs to the tenant, and since when its tokens count. */
export interface MemberTokenState {
  /** The tenant's id: the edge's purge of a tenant drops these answers too. */
  id: string;
  user_id: string;
  role: string;
  /**
   * The second of the member's last role or permission change (or join), floored: the edge
   * accepts only tokens issued (iat, whole seconds) in a later second, since a token of the
   * same second may predate the change.
   */
  tokens_valid_after: number;
}

export async function memberTokenState(pool: Pool, tenantId: string, userId: string): Promise<MemberTokenState | null> {
  const { rows } = await pool.query<{ tenant_id: string; user_id: string; role: string; valid_after: string }>({
    name: 'member-token-state',
    text: 'SELECT tenant_id, user_id, role, floor(extract(epoch FROM tokens_valid_after)) AS valid_after FROM app.member_token_state($1, $2)',
    values: [tenantId, userId],
  });
  const row = rows[0];
  if (!row) return null;
  return { id: row.tenant_id, user_id: row.user_id, role: row.role, tokens_valid_after: Number(row.valid_after) };
}
