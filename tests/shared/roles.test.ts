import { expect, test } from 'vitest';
import { HASURA_ROLE, tenantRoleOf } from '../../services/shared/src/roles.js';

test("no tenant role becomes Hasura's built-in admin, and every mapping goes back", () => {
  expect(Object.values(HASURA_ROLE)).not.toContain('admin');
  for (const [tenantRole, hasuraRole] of Object.entries(HASURA_ROLE)) expect(tenantRoleOf(hasuraRole)).toBe(tenantRole);
  expect(tenantRoleOf('admin')).toBeNull();
  expect(tenantRoleOf('anonymous')).toBeNull();
});
