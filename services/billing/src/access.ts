import type { PoolClient } from 'pg';
import { inCallerTenant as inTenantOf, readTenantMember, type ServiceCaller } from '../../shared/src/auth/caller.js';
import { fail } from '../../shared/src/errors/catalog.js';
import { can, type Member } from '../../shared/src/permissions.js';
import type { BillingDependencies } from './deps.js';
import type { Context } from './http.js';

/** What a billing route may do: read the tenant's billing, or change it. */
export type BillingAccess = 'read' | 'write';

export type BillingCaller = ServiceCaller;

/** Reads need billing:read (owners and admins) or billing:write; changes need billing:write. */
export function mayAccessBilling(member: Member, access: BillingAccess): boolean {
  if (access === 'write') return can(member, 'billing:write');
  return can(member, 'billing:read') || can(member, 'billing:write');
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
  const { tenantId, principal, member, tenant } = await readTenantMember<{ suspension_reason: string | null }>(
    { principal: context.principal, req: context.req, pool: context.deps.pool },
    { statement: 'billing-caller', tenantColumns: ['suspension_reason'] },
  );
  if (!mayAccessBilling(member, access)) throw fail('forbidden', `missing permission billing:${access}`);
  if (tenant.status === 'suspended') {
    // As the edge: the owners of a tenant suspended for billing, with their own token (not an
    // API key), reach the subscription and the portal, to pay what is due; anything else, or
    // anything for a tenant suspended for another reason, waits until the tenant is active again.
    const payingOwner = member.role === 'owner' && !principal.apiKeyId;
    if (tenant.suspension_reason !== 'billing' || !whileBillingSuspended || !payingOwner) throw fail('tenant_suspended');
  } else if (tenant.status !== 'active') {
    throw fail('tenant_inactive');
  }
  return { tenantId, userId: principal.userId, member };
}

/** A transaction in the caller's tenant, as Hasura would scope it. */
export const inCallerTenant = <T>(deps: BillingDependencies, caller: BillingCaller, work: (client: PoolClient) => Promise<T>): Promise<T> =>
  inTenantOf(deps.pool, caller, work);
