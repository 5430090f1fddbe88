import type { Request } from 'express';
import type { Pool, PoolClient } from 'pg';
import { withTenant } from '../db/tenant-context.js';
import { fail } from '../errors/catalog.js';
import { ROLE_RANK, type Member, type Role } from '../permissions.js';
import type { Principal } from './verifier.js';

const lowerRole = (a: Role, b: Role): Role => (ROLE_RANK[a] <= ROLE_RANK[b] ? a : b);

/**
 * The member an access token acts as in its tenant. A person's token: their current role
 * and extra permissions. An API-key token acts for its creator with the key's role, never
 * above the creator's current one, and without the creator's extras: a key holds its role only.
 */
export function memberFor(principal: Principal, current: { role: Role; permissions: string[] | null }): Member {
  if (principal.apiKeyId) return { role: lowerRole(principal.role ?? 'guest', current.role), permissions: [] };
  return { role: current.role, permissions: current.permissions ?? [] };
}

/** Who calls a service route, once the service has decided the call may go on. */
export interface ServiceCaller {
  tenantId: string;
  userId: string;
  /** The role and extras in force now (read from the database, not from the token). */
  member: Member;
}

/** A transaction in the caller's tenant, as Hasura would scope it. */
export function inCallerTenant<T>(pool: Pool, caller: ServiceCaller, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return withTenant(pool, { tenantId: caller.tenantId, userId: caller.userId, role: caller.member.role }, work);
}

export interface TenantMember<TenantColumns> {
  tenantId: string;
  principal: Principal;
  /** The role and extras in force now (read from the database, not from the token). */
  member: Member;
  /** The tenant's status, slug and the other columns asked for. */
  tenant: { status: string; slug: string } & TenantColumns;
}

/**
 * Who calls a service route, for the token's tenant only: the edge's X-Tenant-Id (or
 * X-Tenant-Slug) must name that same tenant, and the member's role and permissions are read
 * afresh, so a role changed since the token was issued counts now. The caller decides what
 * the tenant's status and the member's permissions allow.
 */
export async function readTenantMember<TenantColumns extends Record<string, unknown> = Record<never, never>>(
  { principal, req, pool }: { principal: Principal | null | undefined; req: Request; pool: Pool },
  { statement, tenantColumns = [] }: { statement: string; tenantColumns?: ReadonlyArray<keyof TenantColumns & string> },
): Promise<TenantMember<TenantColumns>> {
  if (!principal) throw fail('unauthenticated');
  if (!principal.tenantId) throw fail('not_a_member', 'the access token names no tenant: switch to one first');
  const tenantId = principal.tenantId;
  const headerId = req.get('x-tenant-id');
  if (headerId !== undefined && headerId !== tenantId) throw fail('tenant_mismatch');
  const extra = tenantColumns.map((column) => `, t.${column}`).join('');
  const row = await withTenant(pool, { tenantId, userId: principal.userId, role: principal.role ?? 'member' }, async (client) => {
    const { rows } = await client.query<{ role: Role; permissions: string[] | null; status: string; slug: string } & TenantColumns>({
      name: statement,
      // session_member answers for the session's own user (hasura.user), whatever RLS shows.
      text: `SELECT m.role, m.permissions, t.status, t.slug${extra} FROM app.session_member($1) AS m CROSS JOIN tenants t WHERE t.id = $1`,
      values: [tenantId],
    });
    return rows[0];
  });
  // The edge sends the slug with every request: the token's tenant's own row answers it, no
  // lookup of the slug (slugs are unique).
  const headerSlug = req.get('x-tenant-slug');
  if (headerSlug !== undefined && headerSlug !== row?.slug) throw fail('tenant_mismatch');
  if (!row) throw fail('not_a_member');
  const { role, permissions, ...tenant } = row;
  return { tenantId, principal, member: memberFor(principal, { role, permissions }), tenant: tenant as { status: string; slug: string } & TenantColumns };
}
