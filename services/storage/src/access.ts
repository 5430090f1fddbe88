import type { PoolClient } from 'pg';
import type { Principal } from '../../shared/src/auth/verifier.js';
import { withTenant } from '../../shared/src/db/tenant-context.js';
import { fail } from '../../shared/src/errors/catalog.js';
import { can, ROLE_RANK, type Member, type Role } from '../../shared/src/permissions.js';
import type { StorageDependencies } from './deps.js';
import type { Context } from './http.js';

/** The permissions of the storage routes (app.role_permissions and permissions.ts agree on who holds them). */
export type StoragePermission = 'files:read' | 'files:write' | 'storage:credentials';

export interface StorageCaller {
  tenantId: string;
  userId: string;
  /** The role and extras in force now (read from the database, not from the token). */
  member: Member;
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
 * The caller of a storage route, for the token's tenant only: the edge's X-Tenant-Id (or
 * X-Tenant-Slug) must name that same tenant, and the member's role and permissions are read
 * afresh, so a role changed since the token was issued counts now. Refuses with 403 unless
 * `can(member, permission)`, and for a tenant that is not active (the edge refuses a
 * suspended tenant too; this holds when the service is reached another way).
 */
export async function storageCaller(context: Context<unknown, unknown, unknown>, permission: StoragePermission): Promise<StorageCaller> {
  const { principal, req, deps } = context;
  if (!principal) throw fail('unauthenticated');
  if (!principal.tenantId) throw fail('not_a_member', 'the access token names no tenant: switch to one first');
  const tenantId = principal.tenantId;
  const headerId = req.get('x-tenant-id');
  if (headerId !== undefined && headerId !== tenantId) throw fail('tenant_mismatch');
  const headerSlug = req.get('x-tenant-slug');
  if (headerSlug !== undefined) {
    const { rows } = await deps.pool.query<{ id: string }>({ name: 'storage-tenant-by-slug', text: 'SELECT id FROM app.resolve_tenant_by_slug($1)', values: [headerSlug] });
    if (rows[0]?.id !== tenantId) throw fail('tenant_mismatch');
  }
  const row = await withTenant(deps.pool, { tenantId, userId: principal.userId, role: principal.role ?? 'member' }, async (client) => {
    const { rows } = await client.query<{ role: Role; permissions: string[] | null; status: string }>({
      name: 'storage-caller',
      // session_member answers for the session's own user (hasura.user), whatever RLS shows.
      text: `SELECT m.role, m.permissions, t.status
             FROM app.session_member($1) AS m CROSS JOIN tenants t WHERE t.id = $1`,
      values: [tenantId],
    });
    return rows[0];
  });
  if (!row) throw fail('not_a_member');
  if (row.status === 'suspended') throw fail('tenant_suspended');
  if (row.status !== 'active') throw fail('tenant_inactive');
  const member = memberFor(principal, row);
  if (!can(member, permission)) throw fail('forbidden', `missing permission ${permission}`);
  return { tenantId, userId: principal.userId, member };
}

/** A transaction in the caller's tenant, as Hasura would scope it. */
export function inCallerTenant<T>(deps: StorageDependencies, caller: StorageCaller, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return withTenant(deps.pool, { tenantId: caller.tenantId, userId: caller.userId, role: caller.member.role }, work);
}
