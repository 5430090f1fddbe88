/**
 * The reported escalation, end to end through the edge and Hasura (issue 13, point 1): a
 * tenant admin's token writes {*} into the admin's own tenant_members row with
 * `update_tenant_members` (Hasura's metadata lets tenant_admin update permissions), or sets
 * the admin's own role to owner, then asks /auth/members to make them owner. Every step is
 * refused and no row changes: Hasura reaches Postgres as hasura_app with `hasura.user`,
 * and the grant-bounds trigger reads the writer's own membership from the database.
 * Needs a Docker engine (the compose stack); where none answers, the suite is skipped with
 * one line saying so, like tests/e2e/graphql.test.ts. The same attacks run without Docker
 * at the database in tests/db/privilege-escalation.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dockerUnavailable, type Stack } from './stack.js';

const unavailable = process.env.TENANTRY_E2E === '0' ? 'TENANTRY_E2E=0' : dockerUnavailable();
if (unavailable) console.log(`tests/e2e: membership attack suite SKIPPED — ${unavailable}; it needs Docker (CI runs it)`);

interface GraphqlAnswer {
  data?: Record<string, unknown> | null;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

describe.skipIf(unavailable !== null)(`membership escalation through GraphQL${unavailable ? ` (skipped: ${unavailable})` : ''}`, { timeout: 120_000 }, () => {
  let stack: Stack;
  const password = 'correct horse battery staple 42';
  const people = { owner: { id: '', token: '' }, admin: { id: '', token: '' }, member: { id: '', token: '' } };

  async function edge(pathname: string, init: { method?: string; body?: unknown; token?: string } = {}) {
    const response = await fetch(`${stack.edgeUrl}${pathname}`, {
      method: init.method ?? 'POST',
      headers: { 'content-type': 'application/json', 'x-tenant-slug': 'escalate', ...(init.token ? { authorization: `Bearer ${init.token}` } : {}) },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function graphql(token: string, query: string, variables: Record<string, unknown>): Promise<GraphqlAnswer> {
    const { body } = await edge('/v1/graphql', { token, body: { query, variables } });
    return body as GraphqlAnswer;
  }

  /** The row as the owner sees it through GraphQL; permissions as a Postgres array literal, however Hasura spells the array. */
  async function row(userId: string): Promise<{ role: string; permissions: string }> {
    const answer = await graphql(people.owner.token, 'query ($id: uuid!) { tenant_members(where: {user_id: {_eq: $id}}) { role permissions } }', { id: userId });
    expect(answer.errors, JSON.stringify(answer.errors)).toBeUndefined();
    const found = (answer.data!.tenant_members as Array<{ role: string; permissions: string | string[] }>)[0]!;
    return { role: found.role, permissions: typeof found.permissions === 'string' ? found.permissions : `{${found.permissions.join(',')}}` };
  }

  /** A refused mutation: GraphQL errors, or nothing changed. */
  function expectRefused(answer: GraphqlAnswer): void {
    const affected = (answer.data?.update_tenant_members as { affected_rows?: number } | null | undefined)?.affected_rows ?? 0;
    expect(answer.errors !== undefined || affected === 0, JSON.stringify(answer)).toBe(true);
  }

  beforeAll(async () => {
    const { startStack } = await import('./stack.js');
    stack = await startStack();
    for (const [name, person] of Object.entries(people)) {
      const created = JSON.parse(await stack.cli(['user', 'create', `${name}-esc@e2e.test`, '--password-stdin', '--json'], `${password}\n`)) as { id: string };
      person.id = created.id;
    }
    await stack.cli(['tenant', 'create', 'Escalate', '--slug', 'escalate', '--owner', 'owner-esc@e2e.test']);
    await stack.cli(['member', 'add', 'escalate', 'admin-esc@e2e.test', 'admin']);
    await stack.cli(['member', 'add', 'escalate', 'member-esc@e2e.test', 'member']);
    for (const [name, person] of Object.entries(people)) {
      const { status, body } = await edge('/auth/login', { body: { email: `${name}-esc@e2e.test`, password, tenant: 'escalate' } });
      expect(status, JSON.stringify(body)).toBe(200);
      person.token = body.accessToken as string;
    }
  }, 900_000);

  afterAll(async () => {
    await stack?.down();
  }, 120_000);

  const UPDATE_PERMISSIONS = `mutation ($id: uuid!, $permissions: _text!) {
    update_tenant_members(where: {user_id: {_eq: $id}}, _set: {permissions: $permissions}) { affected_rows }
  }`;
  const UPDATE_ROLE = `mutation ($id: uuid!, $role: member_role!) {
    update_tenant_members(where: {user_id: {_eq: $id}}, _set: {role: $role}) { affected_rows }
  }`;

  test('a tenant admin writes {*} into their own permissions: refused, the row unchanged', async () => {
    expectRefused(await graphql(people.admin.token, UPDATE_PERMISSIONS, { id: people.admin.id, permissions: '{*}' }));
    expect(await row(people.admin.id)).toEqual({ role: 'admin', permissions: '{}' });
  });

  test('a tenant admin sets their own role to owner: refused, the row unchanged', async () => {
    expectRefused(await graphql(people.admin.token, UPDATE_ROLE, { id: people.admin.id, role: 'owner' }));
    expect((await row(people.admin.id)).role).toBe('admin');
  });

  test('a tenant admin grants another member {*}: refused; then /auth/members will not make them owner', async () => {
    expectRefused(await graphql(people.admin.token, UPDATE_PERMISSIONS, { id: people.member.id, permissions: '{*}' }));
    expect(await row(people.member.id)).toEqual({ role: 'member', permissions: '{}' });
    const promoted = await edge(`/auth/members/${people.admin.id}`, { method: 'PATCH', token: people.admin.token, body: { role: 'owner' } });
    expect(promoted.status, JSON.stringify(promoted.body)).toBe(403);
    expect((await row(people.admin.id)).role).toBe('admin');
  });

  test('a NULL slipped into a permission list first does not open the way to {*}', async () => {
    expectRefused(await graphql(people.admin.token, UPDATE_PERMISSIONS, { id: people.admin.id, permissions: '{projects:read,NULL}' }));
    expectRefused(await graphql(people.admin.token, UPDATE_PERMISSIONS, { id: people.admin.id, permissions: '{*}' }));
    expect(await row(people.admin.id)).toEqual({ role: 'admin', permissions: '{}' });
  });

  test('the owner still manages through GraphQL: a member becomes admin', async () => {
    const answer = await graphql(people.owner.token, UPDATE_ROLE, { id: people.member.id, role: 'admin' });
    expect(answer.errors, JSON.stringify(answer.errors)).toBeUndefined();
    expect((answer.data!.update_tenant_members as { affected_rows: number }).affected_rows).toBe(1);
    expect((await row(people.member.id)).role).toBe('admin');
  });
});
