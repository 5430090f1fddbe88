/**
 * Domain squatting against the real Hasura, through the edge (issue 13, point 7): tenant
 * A's admin registers tenant B's domain through GraphQL. An unverified domain must block
 * nobody: B still adds it, the first to verify keeps it, and no tenant can mark a domain
 * verified through GraphQL. Needs a Docker engine, like tests/e2e/graphql.test.ts; where
 * none answers, the suite is skipped with one line saying so. The same attacks run at the
 * database on every machine: tests/db/domain-squatting.test.ts.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dockerUnavailable, type Stack } from './stack.js';

const unavailable = process.env.TENANTRY_E2E === '0' ? 'TENANTRY_E2E=0' : dockerUnavailable();
if (unavailable) console.log(`tests/e2e: domain squatting suite SKIPPED — ${unavailable}; it needs Docker (CI runs it)`);

interface GraphQLAnswer {
  status: number;
  data?: Record<string, unknown> | null;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

describe.skipIf(unavailable !== null)(`a tenant admin cannot squat another tenant's domain${unavailable ? ` (skipped: ${unavailable})` : ''}`, { timeout: 120_000 }, () => {
  let stack: Stack;
  const password = 'correct horse battery staple 42';
  const tokens = { adminA: '', ownerB: '', ownerC: '' };
  const domain = 'shop.bravo-brand.test';

  /** POST through the edge over node:http, because fetch() may not set Host. */
  function post(pathname: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const request = http.request(`${stack.edgeUrl}${pathname}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }));
      });
      request.on('error', reject);
      request.end(JSON.stringify(body));
    });
  }
  async function graphql(token: string, slug: string, query: string, variables: Record<string, unknown> = {}): Promise<GraphQLAnswer> {
    const { status, body } = await post('/v1/graphql', { query, variables }, { authorization: `Bearer ${token}`, 'x-tenant-slug': slug });
    return { status, ...(body as Omit<GraphQLAnswer, 'status'>) };
  }
  const claim = (token: string, slug: string) =>
    graphql(token, slug, 'mutation ($domain: String!) { insert_tenant_domains_one(object: { domain: $domain }) { id domain verified_at } }', { domain });
  const ownDomains = async (token: string, slug: string) =>
    ((await graphql(token, slug, 'query { tenant_domains { domain verified_at } }')).data?.tenant_domains as Array<{ domain: string; verified_at: string | null }>) ?? [];
  const psql = (sql: string) =>
    stack.compose(['exec', '-T', 'postgres', 'psql', '-v', 'ON_ERROR_STOP=1', '-At', '-U', 'postgres', '-d', stack.env.POSTGRES_DB!, '-c', sql]);

  beforeAll(async () => {
    const { startStack } = await import('./stack.js');
    stack = await startStack();
    for (const email of ['owner@alpha.e2e.test', 'admin@alpha.e2e.test', 'owner@bravo.e2e.test', 'owner@charlie.e2e.test']) {
      await stack.cli(['user', 'create', email, '--password-stdin', '--json'], `${password}\n`);
    }
    await stack.cli(['tenant', 'create', 'Alpha', '--slug', 'alpha', '--plan', 'pro', '--owner', 'owner@alpha.e2e.test', '--json']);
    await stack.cli(['tenant', 'create', 'Bravo', '--slug', 'bravo', '--plan', 'pro', '--owner', 'owner@bravo.e2e.test', '--json']);
    // Charlie is on free: its plan has no custom domains.
    await stack.cli(['tenant', 'create', 'Charlie', '--slug', 'charlie', '--owner', 'owner@charlie.e2e.test', '--json']);
    await stack.cli(['member', 'add', 'alpha', 'admin@alpha.e2e.test', 'admin']);
    const login = async (email: string, tenant: string) => {
      const answer = await post('/auth/login', { email, password, tenant }, {});
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      return answer.body.accessToken as string;
    };
    tokens.adminA = await login('admin@alpha.e2e.test', 'alpha');
    tokens.ownerB = await login('owner@bravo.e2e.test', 'bravo');
    tokens.ownerC = await login('owner@charlie.e2e.test', 'charlie');
  }, 900_000);

  afterAll(async () => {
    await stack?.down();
  }, 120_000);

  test("A's admin claims B's domain; B still adds it", async () => {
    const squatted = await claim(tokens.adminA, 'alpha');
    expect(squatted.errors, JSON.stringify(squatted)).toBeUndefined();
    expect(squatted.data?.insert_tenant_domains_one).toMatchObject({ domain, verified_at: null });
    const owned = await claim(tokens.ownerB, 'bravo');
    expect(owned.errors, JSON.stringify(owned)).toBeUndefined();
    expect(owned.data?.insert_tenant_domains_one).toMatchObject({ domain, verified_at: null });
  });

  test("A's admin cannot mark the claim verified through GraphQL", async () => {
    const update = await graphql(
      tokens.adminA,
      'alpha',
      'mutation ($domain: String!) { update_tenant_domains(where: { domain: { _eq: $domain } }, _set: { verified_at: "now()" }) { affected_rows } }',
      { domain },
    );
    expect(update.errors?.length ?? 0, JSON.stringify(update)).toBeGreaterThan(0);
    const insert = await graphql(
      tokens.adminA,
      'alpha',
      'mutation { insert_tenant_domains_one(object: { domain: "pre.bravo-brand.test", verified_at: "now()" }) { id } }',
    );
    expect(insert.errors?.length ?? 0, JSON.stringify(insert)).toBeGreaterThan(0);
    expect((await ownDomains(tokens.adminA, 'alpha')).filter((row) => row.verified_at !== null)).toEqual([]);
  });

  test("B verifies: A's claim is gone, and the domain resolves to B at the edge", async () => {
    // What `tenantry domain verify bravo <domain>` runs once the TXT record matches (the
    // stack's resolver cannot be given the record).
    const verified = await psql(`UPDATE tenant_domains SET verified_at = now() WHERE domain = '${domain}' AND tenant_id = (SELECT id FROM tenants WHERE slug = 'bravo')`);
    expect(verified.code, verified.stderr).toBe(0);
    expect((await ownDomains(tokens.adminA, 'alpha')).map((row) => row.domain)).not.toContain(domain);
    expect((await ownDomains(tokens.ownerB, 'bravo')).find((row) => row.domain === domain)?.verified_at).not.toBeNull();

    const branding = await post('/v1/graphql', { query: 'query { tenants { slug } }' }, { host: domain });
    expect(branding.status, JSON.stringify(branding.body)).toBe(200);
    expect(branding.body.data).toEqual({ tenants: [{ slug: 'bravo' }] });
  });

  test('A claims it again; verifying that claim fails: the first to verify keeps the domain', async () => {
    const again = await claim(tokens.adminA, 'alpha');
    expect(again.errors, JSON.stringify(again)).toBeUndefined();
    const second = await psql(`UPDATE tenant_domains SET verified_at = now() WHERE domain = '${domain}' AND tenant_id = (SELECT id FROM tenants WHERE slug = 'alpha')`);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain('tenant_domains_verified_domain_key');
  });

  test("a plan without custom domains: Hasura's insert check refuses with a permission error, nothing is written", async () => {
    const refused = await graphql(tokens.ownerC, 'charlie', 'mutation { insert_tenant_domains_one(object: { domain: "shop.charlie-brand.test" }) { id } }');
    expect(refused.errors?.[0]?.extensions?.code, JSON.stringify(refused)).toBe('permission-error');
    expect(await ownDomains(tokens.ownerC, 'charlie')).toEqual([]);
  });
});
