import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { can, grantMatches, ROLE_PERMISSIONS, type Role } from '../../services/shared/src/permissions.js';
import { ROLES } from '../../services/shared/src/roles.js';

const RESOURCES = ['users', 'projects', 'settings', 'billing', 'owners', 'ownership'];
const ACTIONS = ['read', 'write', 'delete', 'transfer'];
const ALL = RESOURCES.flatMap((resource) => ACTIONS.map((action) => `${resource}:${action}`));

/** The spec's table, written out by hand: what each role may do among ALL. */
const EXPECTED: Record<Role, (permission: string) => boolean> = {
  owner: () => true,
  admin: (p) => p.startsWith('users:') || p.startsWith('projects:') || p === 'settings:read' || p === 'settings:write' || p === 'billing:read',
  member: (p) => p === 'projects:read' || p === 'projects:write',
  guest: (p) => p === 'projects:read',
};

describe('can(member, permission)', () => {
  test('every role × every permission matches the spec table', () => {
    for (const role of ROLES) {
      for (const permission of ALL) expect(can({ role }, permission), `${role} ${permission}`).toBe(EXPECTED[role](permission));
    }
  });

  test('extras add to the role, with wildcards', () => {
    expect(can({ role: 'guest', permissions: ['billing:read'] }, 'billing:read')).toBe(true);
    expect(can({ role: 'guest', permissions: ['billing:read'] }, 'billing:write')).toBe(false);
    expect(can({ role: 'member', permissions: ['settings:*'] }, 'settings:delete')).toBe(true);
    expect(can({ role: 'member', permissions: ['*'] }, 'owners:write')).toBe(true);
  });

  test('no member, no permission; wildcards do not leak across resources or prefixes', () => {
    expect(can(null, 'projects:read')).toBe(false);
    expect(can(undefined, 'projects:read')).toBe(false);
    expect(grantMatches('users:*', 'users')).toBe(false);
    expect(grantMatches('users:*', 'users:')).toBe(false);
    expect(grantMatches('users:*', 'usersx:read')).toBe(false);
    expect(grantMatches('user:*', 'users:read')).toBe(false);
    expect(grantMatches('projects:read', 'projects:readx')).toBe(false);
  });

  test('property: extras only ever add; a role is monotone in its grants; owner can do anything', () => {
    const permission = fc.tuple(fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/), fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/)).map(([r, a]) => `${r}:${a}`);
    const grant = fc.oneof(permission, fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/).map((r) => `${r}:*`), fc.constant('*'));
    fc.assert(
      fc.property(fc.constantFrom(...ROLES), fc.array(grant, { maxLength: 5 }), permission, (role, extras, wanted) => {
        if (can({ role }, wanted)) expect(can({ role, permissions: extras }, wanted)).toBe(true);
        expect(can({ role: 'owner', permissions: extras }, wanted)).toBe(true);
        // Exactly: allowed iff some grant of the role or the extras matches.
        const grants = [...ROLE_PERMISSIONS[role], ...extras];
        const matches = grants.some((g) => g === '*' || g === wanted || (g.endsWith(':*') && wanted.split(':')[0] === g.slice(0, -2)));
        expect(can({ role, permissions: extras }, wanted)).toBe(matches);
      }),
      { numRuns: 500 },
    );
  });
});

describe('a malformed grant from the database', () => {
  test('can() with a null extra (a NULL array element) answers by the other grants and never throws', () => {
    const extras = ['billing:read', null] as unknown as string[];
    expect(() => can({ role: 'guest', permissions: extras }, 'users:write')).not.toThrow();
    expect(can({ role: 'guest', permissions: extras }, 'users:write')).toBe(false);
    expect(can({ role: 'guest', permissions: extras }, 'billing:read')).toBe(true);
    expect(grantMatches(null, '*')).toBe(false);
  });
});
