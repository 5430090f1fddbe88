/**
 * Read-only tokens against the real Hasura, through the edge (issue 13, points 3 and 4):
 * a read-only API key's token and a staff impersonation token carry a `<role>_readonly`
 * Hasura role, which the generated metadata lets select and never write. Here Hasura itself
 * must refuse their mutations. Needs a Docker engine, like tests/e2e/graphql.test.ts; where
 * none answers, the suite is skipped with one line saying so.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dockerUnavailable, type Stack } from './stack.js';

const unavailable = process.env.TENANTRY_E2E === '0' ? 'TENANTRY_E2E=0' : dockerUnavailable();
if (unavailable) console.log(`tests/e2e: read-only attack suite SKIPPED — ${unavailable}; it needs Docker (CI runs it)`);

interface GraphQLAnswer {
  status: number;
  data?: Record<string, unknown> | null;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

describe.skipIf(unavailable !== null)(`read-only tokens cannot write through GraphQL${unavailable ? ` (skipped: ${unavailable})` : ''}`, { timeout: 120_000 }, () => {
  let stack: Stack;
  const password = 'correct horse battery staple 42';
  const tokens = { owner: '', readOnlyKey: '', writingKey: '', impersonation: '' };
  let projectId = '';

  async function edge(pathname: string, body: unknown, headers: Record<string, string> = {}) {
    const response = await fetch(`${stack.edgeUrl}${pathname}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-tenant-slug': 'rodemo', ...headers },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }
  async function graphql(token: string, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLAnswer> {
    const { status, body } = await edge('/v1/graphql', { query, variables }, { authorization: `Bearer ${token}` });
    return { status, ...(body as Omit<GraphQLAnswer, 'status'>) };
  }
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const roleOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'))['https://hasura.io/jwt/claims']['x-hasura-default-role'];
  const projectNames = async () => ((await graphql(tokens.owner, 'query { projects { id name } }')).data!.projects as Array<{ id: string; name: string }>);

  const MUTATIONS = {
    delete: ['mutation ($id: uuid!) { delete_projects(where: { id: { _eq: $id } }) { affected_rows } }', 'delete_projects'],
    update: ['mutation ($id: uuid!) { update_projects(where: { id: { _eq: $id } }, _set: { name: "defaced" }) { affected_rows } }', 'update_projects'],
    insert: ['mutation { insert_projects_one(object: { name: "planted" }) { id } }', 'insert_projects_one'],
  } as const;

  /** Every write is refused by Hasura (the read-only role has no such field), and nothing changed. */
  async function expectNoWrites(token: string) {
    for (const [kind, [mutation, field]] of Object.entries(MUTATIONS)) {
      const answer = await graphql(token, mutation, kind === 'insert' ? {} : { id: projectId });
      expect(answer.errors?.length ?? 0, `${kind}: ${JSON.stringify(answer)}`).toBeGreaterThan(0);
      expect(answer.data?.[field], kind).toBeUndefined();
    }
    expect(await projectNames()).toEqual([{ id: projectId, name: 'Keep me' }]);
  }

  beforeAll(async () => {
    const { startStack } = await import('./stack.js');
    stack = await startStack();
    for (const email of ['owner@ro.e2e.test', 'staff@ro.e2e.test']) {
      await stack.cli(['user', 'create', email, '--password-stdin', '--json'], `${password}\n`);
    }
    // On starter: its owner creates API keys below.
    await stack.cli(['tenant', 'create', 'Read Only Demo', '--slug', 'rodemo', '--plan', 'starter', '--owner', 'owner@ro.e2e.test', '--json']);
    // No CLI command makes platform staff: the flag is set as the database superuser would.
    const staff = await stack.compose([
      'exec', '-T', 'postgres', 'psql', '-v', 'ON_ERROR_STOP=1', '-U', 'postgres', '-d', stack.env.POSTGRES_DB!,
      '-c', "UPDATE users SET is_staff = true WHERE email = 'staff@ro.e2e.test'",
    ]);
    expect(staff.code, staff.stderr).toBe(0);

    const login = async (email: string, tenant?: string) => {
      const answer = await edge('/auth/login', { email, password, ...(tenant ? { tenant } : {}) });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      return answer.body as { accessToken: string; tenant: { id: string } | null };
    };
    const owner = await login('owner@ro.e2e.test', 'rodemo');
    tokens.owner = owner.accessToken;
    const inserted = await graphql(tokens.owner, 'mutation { insert_projects_one(object: { name: "Keep me" }) { id } }');
    projectId = (inserted.data!.insert_projects_one as { id: string }).id;

    for (const [name, readOnly] of [['readOnlyKey', true], ['writingKey', false]] as const) {
      const key = await edge('/auth/api-keys', { name, role: 'member', readOnly }, bearer(tokens.owner));
      expect(key.status, JSON.stringify(key.body)).toBe(201);
      const exchanged = await edge('/auth/token', { apiKey: key.body.key });
      expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
      tokens[name] = exchanged.body.accessToken as string;
    }

    const staffLogin = await login('staff@ro.e2e.test');
    // Staff act across tenants: their own token names none, so no tenant header either.
    const impersonated = await fetch(`${stack.edgeUrl}/auth/staff/impersonate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...bearer(staffLogin.accessToken) },
      body: JSON.stringify({ tenantId: owner.tenant!.id, userId: JSON.parse(Buffer.from(tokens.owner.split('.')[1]!, 'base64url').toString()).sub, reason: 'e2e: read-only impersonation' }),
    });
    const impersonation = (await impersonated.json()) as { accessToken: string };
    expect(impersonated.status, JSON.stringify(impersonation)).toBe(200);
    tokens.impersonation = impersonation.accessToken;
  }, 900_000);

  afterAll(async () => {
    await stack?.down();
  }, 120_000);

  test("a read-only API key's token (member_readonly) reads projects and cannot delete, update or insert one", async () => {
    expect(roleOf(tokens.readOnlyKey)).toBe('member_readonly');
    const read = await graphql(tokens.readOnlyKey, 'query { projects { id name } }');
    expect(read.data?.projects).toEqual([{ id: projectId, name: 'Keep me' }]);
    await expectNoWrites(tokens.readOnlyKey);
  });

  test('an impersonation token of the owner (owner_readonly) reads and cannot delete, update or insert', async () => {
    expect(roleOf(tokens.impersonation)).toBe('owner_readonly');
    const read = await graphql(tokens.impersonation, 'query { projects { id name } }');
    expect(read.data?.projects).toEqual([{ id: projectId, name: 'Keep me' }]);
    await expectNoWrites(tokens.impersonation);
    // Asking for the owner's own role is no way around it: the edge drops X-Hasura-Role, and
    // Hasura would refuse a role outside x-hasura-allowed-roles anyway.
    const escalated = await edge('/v1/graphql', { query: MUTATIONS.delete[0], variables: { id: projectId } }, { ...bearer(tokens.impersonation), 'x-hasura-role': 'owner' });
    expect((escalated.body as { data?: { delete_projects?: unknown } }).data?.delete_projects).toBeUndefined();
    expect(await projectNames()).toEqual([{ id: projectId, name: 'Keep me' }]);
  });

  test('the writing key of the same creator still writes: the refusals above are the role, not the setup', async () => {
    expect(roleOf(tokens.writingKey)).toBe('member');
    const inserted = await graphql(tokens.writingKey, MUTATIONS.insert[0]);
    const id = (inserted.data?.insert_projects_one as { id: string } | undefined)?.id;
    expect(id, JSON.stringify(inserted)).toBeDefined();
    const removed = await graphql(tokens.writingKey, MUTATIONS.delete[0], { id });
    expect(removed.data?.delete_projects).toEqual({ affected_rows: 1 });
  });
});
