/**
 * The tenant roles, and the Hasura role each one is in a token. Hasura reserves `admin`:
 * it is the built-in role that bypasses every permission, so a token claiming it would read
 * every tenant. The tenant admin is therefore the Hasura role `tenant_admin`.
 * `anonymous` is the role of requests (and tokens) that name no tenant.
 */
export type TenantRole = 'owner' | 'admin' | 'member' | 'guest';
export type HasuraRole = 'owner' | 'tenant_admin' | 'member' | 'guest' | 'anonymous';

export const HASURA_ROLE: Record<TenantRole, HasuraRole> = {
  owner: 'owner',
  admin: 'tenant_admin',
  member: 'member',
  guest: 'guest',
};
export const HASURA_ROLES: readonly HasuraRole[] = ['owner', 'tenant_admin', 'member', 'guest', 'anonymous'];

/** The tenant role a token's Hasura role stands for; null for anonymous or anything unknown. */
export function tenantRoleOf(hasuraRole: string): TenantRole | null {
  const entry = Object.entries(HASURA_ROLE).find(([, hasura]) => hasura === hasuraRole);
  return entry ? (entry[0] as TenantRole) : null;
}
