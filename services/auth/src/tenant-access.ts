import type { PoolClient } from 'pg';
import { withTenant } from '../../shared/src/db/tenant-context.js';
import type { AuthDependencies } from './deps.js';
import { fail } from '../../shared/src/errors/catalog.js';
import type { Context } from './http.js';
import { can, type Member, type Role } from '../../shared/src/permissions.js';
import type { Principal } from '../../shared/src/auth/verifier.js';

export interface Acting {
  tenantId: string;
  userId: string;
  member: Member;
  principal: Principal;
}

/**
 * The caller as a member of the token's tenant, read afresh from the database (a role
 * changed since the token was issued counts now). The token's tenant is authoritative:
 * an X-Tenant-Id or X-Tenant-Slug header (set by the edge) must name the same tenant.
 */
export async function actingMember(context: Context<unknown, unknown, unknown>): Promise<Acting> {
  const { principal, req, deps } = context;
  if (!principal) throw fail('unauthenticated');
  if (!principal.tenantId) throw fail('not_a_member', 'the access token names no tenant: switch to one first');
  if (principal.apiKeyId) throw fail('api_key_not_allowed');
  // Read-only tokens (impersonation, read-only keys) never get here on a write: the kit
  // refuses them for every non-GET route before the handler runs.
  const tenantId = principal.tenantId;
  const headerId = req.get('x-tenant-id');
  if (headerId !== undefined && headerId !== tenantId) throw fail('tenant_mismatch');
  const headerSlug = req.get('x-tenant-slug');
  if (headerSlug !== undefined) {
    const { rows } = await deps.pool.query<{ id: string }>('SELECT id FROM app.resolve_tenant_by_slug($1)', [headerSlug]);
    if (rows[0]?.id !== tenantId) throw fail('tenant_mismatch');
  }
  const row = await withTenant(deps.pool, { tenantId, userId: principal.userId, role: principal.role ?? 'member' }, async (client) => {
    const { rows } = await client.query<{ role: Role; permissions: string[]; status: string }>({
      name: 'acting-member',
      text: `SELECT m.role, m.permissions, t.status FROM tenant_members m JOIN tenants t ON t.id = m.tenant_id
             WHERE m.tenant_id = $1 AND m.user_id = $2`,
      values: [tenantId, principal.userId],
    });
    return rows[0];
  });
  if (!row) throw fail('not_a_member');
  if (row.status !== 'active') throw fail('tenant_inactive');
  return { tenantId, userId: principal.userId, member: { role: row.role, permissions: row.permissions }, principal };
}

export function authorize(acting: Acting, permission: string): void {
  if (!can(acting.member, permission)) throw fail('forbidden', `missing permission ${permission}`);
}

/** A transaction in the acting member's tenant, as Hasura would scope it. */
export function inTenant<T>(deps: AuthDependencies, acting: Acting, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return withTenant(deps.pool, { tenantId: acting.tenantId, userId: acting.userId, role: acting.member.role }, work);
}
