/**
 * The role model exists twice: services/shared/src/permissions.ts (every service's 403s)
 * and app.role_permissions / app.role_rank / app.grant_matches in SQL (the database's
 * grant bounds, which every writer passes). They must give the same answers: every role,
 * and a property-based sample of grants and permissions, odd spellings included.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import { can, grantMatches, ROLE_PERMISSIONS, ROLE_RANK, type Role } from '../../services/shared/src/permissions.js';
import { ROLES } from '../../services/shared/src/roles.js';
import { poolAs } from '../helpers/database.js';

// The services ask these too: run as app_service, which holds EXECUTE on them.
const service = poolAs('app_service', 2);
afterAll(() => service.end());

describe('roles', () => {
  test.each(ROLES)('%s: the same grants and rank in SQL and TypeScript', async (role) => {
    const { rows } = await service.query<{ permissions: string[]; rank: number }>(
      'SELECT app.role_permissions($1::member_role) AS permissions, app.role_rank($1::member_role) AS rank',
      [role],
    );
    expect(rows[0]).toEqual({ permissions: [...ROLE_PERMISSIONS[role]], rank: ROLE_RANK[role] });
  });
});

const RESOURCES = ['users', 'projects', 'settings', 'billing', 'owners', 'ownership', 'user', 'projectsx'];
const ACTIONS = ['read', 'write', 'transfer', '*', 'readx'];
/** Well-formed names (resource:action, resource:*, *) and near misses, which the two must also agree on. */
const permission = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...RESOURCES), fc.constantFrom(...ACTIONS)).map(([resource, action]) => `${resource}:${action}`) },
  { weight: 1, arbitrary: fc.constant('*') },
  { weight: 1, arbitrary: fc.constantFrom('users:', ':*', 'users', '**', 'users:**', '*:read', 'users:*x', '') },
  { weight: 2, arbitrary: fc.string({ maxLength: 12 }) },
);

/** Asks SQL about many cases in one round trip. */
async function sqlMatches(pairs: Array<[string, string]>): Promise<boolean[]> {
  const { rows } = await service.query<{ matches: boolean }>(
    'SELECT app.grant_matches(g, p) AS matches FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(g, p, n) ORDER BY n',
    [pairs.map(([grant]) => grant), pairs.map(([, requested]) => requested)],
  );
  return rows.map((row) => row.matches);
}

describe('grant matching', () => {
  test('the documented cases', async () => {
    const cases: Array<[string, string, boolean]> = [
      ['*', 'users:write', true],
      ['*', '*', true],
      ['users:*', 'users:read', true],
      ['users:*', 'users:write', true],
      ['users:*', 'users:*', true],
      ['users:*', '*', false],
      ['users:*', 'projects:read', false],
      ['users:*', 'users:', false],
      ['users:read', 'users:read', true],
      ['users:read', 'users:write', false],
      ['users:write', 'users:*', false],
    ];
    expect(await sqlMatches(cases.map(([grant, requested]) => [grant, requested]))).toEqual(cases.map(([, , expected]) => expected));
    for (const [grant, requested, expected] of cases) expect(grantMatches(grant, requested), `${grant} covers ${requested}`).toBe(expected);
  });

  test('app.grant_matches agrees with grantMatches on sampled grants and permissions', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(permission, permission), { minLength: 1, maxLength: 40 }), async (pairs) => {
        expect(await sqlMatches(pairs)).toEqual(pairs.map(([grant, requested]) => grantMatches(grant, requested)));
      }),
      { numRuns: 60 },
    );
  });

  test("app.member_can agrees with can() for every role with sampled extra grants", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROLES), fc.array(permission, { maxLength: 4 }), fc.array(permission, { minLength: 1, maxLength: 20 }), async (role: Role, extras, asked) => {
        const { rows } = await service.query<{ allowed: boolean }>(
          'SELECT app.member_can($1::member_role, $2::text[], p) AS allowed FROM unnest($3::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n',
          [role, extras, asked],
        );
        expect(rows.map((row) => row.allowed)).toEqual(asked.map((requested) => can({ role, permissions: extras }, requested)));
      }),
      { numRuns: 60 },
    );
  });
});
