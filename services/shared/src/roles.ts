/**
 * The tenant roles, and the Hasura role each one is in a token. Hasura reserves `admin`:
 * it is the built-in role that bypasses every permission, so a token claiming it would read
 * every tenant. The tenant admin is therefore the Hasura role `tenant_admin`.
 * `anonymous` is the role of requests (and tokens) that name no tenant.
 *
 * Every tenant role also has a read-only twin, `<hasura role>_readonly`: the generated
 * metadata gives it exactly the select permissions of its base role and no insert, update
 * or delete anywhere (the metadata lint checks both). Read-only API keys and staff
 * impersonation tokens carry it, so "read-only" is enforced by Hasura, not promised.
 */
/**
 * The one list of tenant roles, highest first. The auth service's permissions and the CLI
 * import it; the SQL enum member_role is checked against it (tests/shared/roles-enum.test.ts).
 */
export const ROLES = ['owner', 'admin', 'member', 'guest'] as const;
export type TenantRole = (typeof ROLES)[number];
export type BaseHasuraRole = 'owner' | 'tenant_admin' | 'member' | 'guest';
export type ReadOnlyHasuraRole = `${BaseHasuraRole}_readonly`;
export type HasuraRole = BaseHasuraRole | ReadOnlyHasuraRole | 'anonymous';

export const HASURA_ROLE: Record<TenantRole, BaseHasuraRole> = {
  owner: 'owner',
  admin: 'tenant_admin',
  member: 'member',
  guest: 'guest',
};
export const BASE_HASURA_ROLES: readonly BaseHasuraRole[] = ['owner', 'tenant_admin', 'member', 'guest'];

const READ_ONLY_SUFFIX = '_readonly';

/** The read-only twin of a tenant role's Hasura role. */
export function readOnlyHasuraRole(base: BaseHasuraRole): ReadOnlyHasuraRole {
  return `${base}${READ_ONLY_SUFFIX}`;
}
export const READ_ONLY_HASURA_ROLES: readonly ReadOnlyHasuraRole[] = BASE_HASURA_ROLES.map(readOnlyHasuraRole);
export const HASURA_ROLES: readonly HasuraRole[] = [...BASE_HASURA_ROLES, ...READ_ONLY_HASURA_ROLES, 'anonymous'];

/** The Hasura role a token carries for a tenant role, read-only or not. */
export function hasuraRoleFor(role: TenantRole, readOnly = false): BaseHasuraRole | ReadOnlyHasuraRole {
  return readOnly ? readOnlyHasuraRole(HASURA_ROLE[role]) : HASURA_ROLE[role];
}

export function isReadOnlyHasuraRole(role: string): role is ReadOnlyHasuraRole {
  return (READ_ONLY_HASURA_ROLES as readonly string[]).includes(role);
}

/** The base role of a read-only role, the role itself for a base role; null for anything else. */
export function baseHasuraRoleOf(role: string): BaseHasuraRole | null {
  const base = isReadOnlyHasuraRole(role) ? role.slice(0, -READ_ONLY_SUFFIX.length) : role;
  return (BASE_HASURA_ROLES as readonly string[]).includes(base) ? (base as BaseHasuraRole) : null;
}

/** What a token's Hasura role grants in its tenant; null for anonymous or anything unknown. */
export function tenantAccessOf(hasuraRole: string): { role: TenantRole; readOnly: boolean } | null {
  const base = baseHasuraRoleOf(hasuraRole);
  if (!base) return null;
  const role = (Object.keys(HASURA_ROLE) as TenantRole[]).find((tenantRole) => HASURA_ROLE[tenantRole] === base)!;
  return { role, readOnly: isReadOnlyHasuraRole(hasuraRole) };
}

/** The tenant role a token's Hasura role stands for (read-only or not); null for anonymous or anything unknown. */
export function tenantRoleOf(hasuraRole: string): TenantRole | null {
  return tenantAccessOf(hasuraRole)?.role ?? null;
}
