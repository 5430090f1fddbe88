import type { PoolClient } from 'pg';
import type { Principal } from '../../shared/src/auth/verifier.js';
import { withTenant } from '../../shared/src/db/tenant-context.js';
import { fail } from '../../shared/src/errors/catalog.js';
import { can, ROLE_RANK, type Member, type Role } from '../../shared/src/permissions.js';
import type { BillingDependencies } from './deps.js';
import type { Context } from './http.js';

/** What a billing route may do: read the tenant's billing, or change it. */
export type BillingAccess = 'read' | 'write';

export interface BillingCaller {
  tenantId: string;
  userId: string;
  /** The role and extras in force now (read from the database, not from the token). */
  member: Member;
}

/** Reads need billing:read (owners and admins) or billing:write; changes need billing:write. */
export function mayAccessBilling(member: Member, access: BillingAccess): boolean {
  if (access === 'write') return can(member, 'billing:write');
  return can(member, 'billing:read') || can(member, 'billing:write');
}

const lowerRole = (a: Role, b: Role): Role => (ROLE_RANK[a] <= ROLE_RANK[b] ? a : b);

/**
 * The member an access token acts as in its tenant. A person's token: their current role
 * and extra permissions. An API-key token acts for its creator with the key's role, never
 * above the creator's current one, and without the creator's extras: a key holds its role only.
 */
function memberFor(principal: Principal, current: { role: Role; permissions: string[] | null }): Member {
  if (principal.apiKeyId) return { role: lowerRole(principal.role ?? 'guest', current.role), permissions: [] };
  return { role: current.role, permissions: current.permissions ?? [] };
}

/**
 * The caller of a billing route, for the token's tenant only: the edge's X-Tenant-Id (or
 * X-Tenant-Slug) must name that same tenant, and the member's role and permissions are
 * read afresh, so a role changed since the token was issued counts now. Refuses with 403
 * unless the member may `access` billing; a suspended tenant only when the suspension is
 * billing's own and the route helps to pay (`whileBillingSuspended`).
 */
export async function billingCaller(
  context: Context<unknown, unknown, unknown>,
  access: BillingAccess,
  { whileBillingSuspended }: { whileBillingSuspended: boolean },
): Promise<BillingCaller> {
  const { principal, req, deps } = context;
  if (!principal) throw fail('unauthenticated');
  if (!principal.tenantId) throw fail('not_a_member', 'the access token names no tenant: switch to one first');
  const tenantId = principal.tenantId;
  const headerId = req.get('x-tenant-id');
  if (headerId !== undefined && headerId !== tenantId) throw fail('tenant_mismatch');
  const headerSlug = req.get('x-tenant-slug');
  if (headerSlug !== undefined) {
    const { rows } = await deps.pool.query<{ id: string }>({ name: 'billing-tenant-by-slug', text: 'SELECT id FROM app.resolve_tenant_by_slug($1)', values: [headerSlug] });
    if (rows[0]?.id !== tenantId) throw fail('tenant_mismatch');
  }
  const row = await withTenant(deps.pool, { tenantId, userId: principal.userId, role: principal.role ?? 'member' }, async (client) => {
    const { rows } = await client.query<{ role: Role; permissions: string[] | null; status: string; suspension_reason: string | null }>({
      name: 'billing-caller',
      // session_member answers for the session's own user (hasura.user), whatever RLS shows.
      text: `SELECT m.role, m.permissions, t.status, t.suspension_reason
             FROM app.session_member($1) AS m CROSS JOIN tenants t WHERE t.id = $1`,
      values: [tenantId],
    });
    return rows[0];
  });
  if (!row) throw fail('not_a_member');
  const member = memberFor(principal, row);
  if (!mayAccessBilling(member, access)) throw fail('forbidden', `missing permission billing:${access}`);
  if (row.status === 'suspended') {
    // As the edge: the owners of a tenant suspended for billing, with their own token (not an
    // API key), reach the subscription and the portal, to pay what is due; anything else, or
    // anything for a tenant suspended for another reason, waits until the tenant is active again.
    const payingOwner = member.role === 'owner' && !principal.apiKeyId;
    if (row.suspension_reason !== 'billing' || !whileBillingSuspended || !payingOwner) throw fail('tenant_suspended');
  } else if (row.status !== 'active') {
    throw fail('tenant_inactive');
  }
  return { tenantId, userId: principal.userId, member };
}

/** A transaction in the caller's tenant, as Hasura would scope it. */
export function inCallerTenant<T>(deps: BillingDependencies, caller: BillingCaller, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return withTenant(deps.pool, { tenantId: caller.tenantId, userId: caller.userId, role: caller.member.role }, work);
}
