import { expect, test } from 'vitest';
import {
  baseHasuraRoleOf,
  HASURA_ROLE,
  HASURA_ROLES,
  hasuraRoleFor,
  READ_ONLY_HASURA_ROLES,
  tenantAccessOf,
  tenantRoleOf,
} from '../../services/shared/src/roles.js';

test("no tenant role becomes Hasura's built-in admin, and every mapping goes back", () => {
  expect(Object.values(HASURA_ROLE)).not.toContain('admin');
  for (const [tenantRole, hasuraRole] of Object.entries(HASURA_ROLE)) expect(tenantRoleOf(hasuraRole)).toBe(tenantRole);
  expect(tenantRoleOf('admin')).toBeNull();
  expect(tenantRoleOf('anonymous')).toBeNull();
});

test('every tenant role has a read-only twin, mapped both ways', () => {
  expect(READ_ONLY_HASURA_ROLES).toEqual(['owner_readonly', 'tenant_admin_readonly', 'member_readonly', 'guest_readonly']);
  for (const [tenantRole, hasuraRole] of Object.entries(HASURA_ROLE) as Array<[keyof typeof HASURA_ROLE, string]>) {
    const twin = hasuraRoleFor(tenantRole, true);
    expect(twin).toBe(`${hasuraRole}_readonly`);
    expect(hasuraRoleFor(tenantRole)).toBe(hasuraRole);
    expect(tenantAccessOf(twin)).toEqual({ role: tenantRole, readOnly: true });
    expect(tenantAccessOf(hasuraRole)).toEqual({ role: tenantRole, readOnly: false });
    expect(baseHasuraRoleOf(twin)).toBe(hasuraRole);
    expect(HASURA_ROLES).toContain(twin);
  }
  // Nothing made-up passes: not admin's twin, not anonymous's, not a doubled suffix.
  for (const unknown of ['admin_readonly', 'anonymous_readonly', 'member_readonly_readonly', '_readonly', 'readonly']) {
    expect(tenantAccessOf(unknown), unknown).toBeNull();
    expect(baseHasuraRoleOf(unknown), unknown).toBeNull();
  }
});
