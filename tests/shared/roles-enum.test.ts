/**
 * One list of tenant roles (services/shared/src/roles.ts ROLES, highest first). The SQL enum
 * member_role must hold the same roles in the same order: the CLI lists members ORDER BY the
 * enum, and the auth service, the CLI and the Hasura registry take the list from ROLES.
 */
import { afterAll, expect, test } from 'vitest';
import { ROLES } from '../../services/shared/src/roles.js';
import { poolAs } from '../helpers/database.js';

const service = poolAs('app_service', 1);
afterAll(() => service.end());

test('the SQL enum member_role is ROLES, in order', async () => {
  const { rows } = await service.query<{ role: string }>('SELECT unnest(enum_range(NULL::member_role))::text AS role');
  expect(rows.map((row) => row.role)).toEqual([...ROLES]);
});
