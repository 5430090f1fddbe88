import type { PoolClient } from 'pg';
import { inCallerTenant as inTenantOf, readTenantMember, type ServiceCaller } from '../../shared/src/auth/caller.js';
import { fail } from '../../shared/src/errors/catalog.js';
import { can } from '../../shared/src/permissions.js';
import type { StorageDependencies } from './deps.js';
import type { Context } from './http.js';

/** The permissions of the storage routes (app.role_permissions and permissions.ts agree on who holds them). */
export type StoragePermission = 'files:read' | 'files:write' | 'storage:credentials';

export type StorageCaller = ServiceCaller;

/**
 * The caller of a storage route, for the token's tenant only: the edge's X-Tenant-Id (or
 * X-Tenant-Slug) must name that same tenant, and the member's role and permissions are read
 * afresh, so a role changed since the token was issued counts now. Refuses with 403 unless
 * `can(member, permission)`, and for a tenant that is not active (the edge refuses a
 * suspended tenant too; this holds when the service is reached another way).
 */
export async function storageCaller(context: Context<unknown, unknown, unknown>, permission: StoragePermission): Promise<StorageCaller> {
  const { tenantId, principal, member, tenant } = await readTenantMember(
    { principal: context.principal, req: context.req, pool: context.deps.pool },
    { statement: 'storage-caller' },
  );
  if (tenant.status === 'suspended') throw fail('tenant_suspended');
  if (tenant.status !== 'active') throw fail('tenant_inactive');
  if (!can(member, permission)) throw fail('forbidden', `missing permission ${permission}`);
  return { tenantId, userId: principal.userId, member };
}

/** A transaction in the caller's tenant, as Hasura would scope it. */
export const inCallerTenant = <T>(deps: StorageDependencies, caller: StorageCaller, work: (client: PoolClient) => Promise<T>): Promise<T> =>
  inTenantOf(deps.pool, caller, work);
