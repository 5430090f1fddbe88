import { ROLES, type TenantRole } from './roles.js';

/** A tenant role: the one list is ROLES in services/shared/src/roles.ts. */
export type Role = TenantRole;

/** What each role may do before per-member extras. */
export const ROLE_PERMISSIONS: Record<Role, readonly string[]> = {
  owner: ['*'],
  admin: ['users:*', 'projects:*', 'settings:read', 'settings:write', 'billing:read', 'files:read', 'files:write', 'storage:credentials'],
  member: ['projects:read', 'projects:write', 'files:read', 'files:write'],
  guest: ['projects:read', 'files:read'],
};

export interface Member {
  role: Role;
  /** Extra grants from tenant_members.permissions. */
  permissions?: readonly string[];
}

/**
 * `*` matches everything, `users:*` every action on users, anything else itself. A grant
 * that is not a string (a NULL array element read from the database) matches nothing: a
 * malformed row must deny, never crash the permission check.
 */
export function grantMatches(grant: string | null | undefined, permission: string): boolean {
  if (typeof grant !== 'string') return false;
  if (grant === '*') return true;
  if (grant === permission) return true;
  if (grant.endsWith(':*')) {
    const resource = grant.slice(0, -1); // "users:"
    return permission.startsWith(resource) && permission.length > resource.length;
  }
  return false;
}

/** The one answer to "may this member do X"; every endpoint asks it. */
export function can(member: Member | null | undefined, permission: string): boolean {
  if (!member) return false;
  const grants = [...(ROLE_PERMISSIONS[member.role] ?? []), ...(member.permissions ?? [])];
  return grants.some((grant) => grantMatches(grant, permission));
}

/**
 * Rank for "only owners touch owners" and "a key's role never exceeds its creator's": ROLES
 * lists the roles highest first, so the owner ranks highest and the guest 0.
 */
export const ROLE_RANK = Object.fromEntries(ROLES.map((role, index) => [role, ROLES.length - 1 - index])) as Record<Role, number>;
