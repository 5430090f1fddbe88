/**
 * GraphQL end to end, through the edge, against the compose stack (docker-compose.yml):
 * Postgres, the migration runner, Hasura with the generated metadata, the auth service,
 * the resolver, Redis, MinIO and the OpenResty edge. Needs a Docker engine; where none
 * answers, the whole suite is skipped with one line saying so (CI runs it:
 * .github/workflows/ci.yml).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { FlowsContract } from './contract.js';
import { dockerUnavailable, type Stack } from './stack.js';

const unavailable = process.env.TENANTRY_E2E === '0' ? 'TENANTRY_E2E=0' : dockerUnavailable();
if (unavailable) console.log(`tests/e2e: GraphQL end-to-end suite SKIPPED — ${unavailable}; it needs Docker (CI runs it)`);

// The flows module is typed by the generated operations, which exist only after codegen;
// a computed specifier keeps the root `tsc` from following it (tests/e2e/tsconfig.json
// checks it, and that it satisfies FlowsContract).
const FLOWS = './flows.mjs';

describe.skipIf(unavailable !== null)(`GraphQL end to end through the edge${unavailable ? ` (skipped: ${unavailable})` : ''}`, { timeout: 120_000 }, () => {
  let stack: Stack;
  let flows: FlowsContract;
  const ids = { tenantA: '', tenantB: '' };
  const tokens = { memberA: '', ownerA: '', adminA: '', ownerB: '', apiKeyA: '' };
  const password = 'correct horse battery staple 42';
  const hostOf = (slug: string) => `${slug}.${stack.baseDomain}`;

  async function edge(pathname: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) {
    const response = await fetch(`${stack.edgeUrl}${pathname}`, {
      method: init.method ?? 'POST',
      headers: { 'content-type': 'application/json', ...init.headers },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }
  async function login(email: string, tenant: string): Promise<string> {
    const { status, body } = await edge('/auth/login', { body: { email, password, tenant } });
    expect(status, JSON.stringify(body)).toBe(200);
    return body.accessToken as string;
  }

  beforeAll(async () => {
    const { startStack } = await import('./stack.js');
    stack = await startStack();

    // The generated metadata loads without a single inconsistency.
    const consistency = await fetch(`${stack.hasuraUrl}/v1/metadata`, {
      method: 'POST',
      headers: { 'x-hasura-admin-secret': stack.env.HASURA_GRAPHQL_ADMIN_SECRET!, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'get_inconsistent_metadata', args: {} }),
    });
    expect(await consistency.json()).toMatchObject({ is_consistent: true, inconsistent_objects: [] });

    // Types from the live schema, then the flows type-checked against them.
    const { generateOperations } = await import('./codegen.js');
    await generateOperations(stack.hasuraUrl, stack.env.HASURA_GRAPHQL_ADMIN_SECRET!);
    const root = path.resolve(import.meta.dirname, '../..');
    const typecheck = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tests/e2e/tsconfig.json'], { cwd: root, encoding: 'utf8' });
    expect(typecheck.status, `the e2e flows do not type-check against the live schema:\n${typecheck.stdout}`).toBe(0);
    flows = ((await import(/* @vite-ignore */ FLOWS)) as { default: FlowsContract }).default;

    // Two tenants and their people, created with the CLI inside the stack.
    for (const email of ['owner-a@e2e.test', 'admin-a@e2e.test', 'member-a@e2e.test', 'owner-b@e2e.test']) {
      await stack.cli(['user', 'create', email, '--password-stdin', '--json'], `${password}\n`);
    }
    // A on starter (its owner creates an API key below), B on free: the plan features differ.
    ids.tenantA = JSON.parse(await stack.cli(['tenant', 'create', 'Acme', '--slug', 'acme', '--plan', 'starter', '--owner', 'owner-a@e2e.test', '--json'])).id;
    ids.tenantB = JSON.parse(await stack.cli(['tenant', 'create', 'Beta', '--slug', 'beta', '--owner', 'owner-b@e2e.test', '--json'])).id;
    await stack.cli(['member', 'add', 'acme', 'member-a@e2e.test', 'member']);
    await stack.cli(['member', 'add', 'acme', 'admin-a@e2e.test', 'admin']);

    tokens.ownerA = await login('owner-a@e2e.test', 'acme');
    tokens.memberA = await login('member-a@e2e.test', 'acme');
    tokens.adminA = await login('admin-a@e2e.test', 'acme');
    tokens.ownerB = await login('owner-b@e2e.test', 'beta');
    const key = await edge('/auth/api-keys', { headers: { authorization: `Bearer ${tokens.ownerA}` }, body: { name: 'e2e', role: 'member' } });
    expect(key.status, JSON.stringify(key.body)).toBe(201);
    const exchanged = await edge('/auth/token', { headers: { 'x-tenant-slug': 'acme' }, body: { apiKey: key.body.key } });
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    tokens.apiKeyA = exchanged.body.accessToken as string;
  }, 900_000);

  afterAll(async () => {
    await stack?.down();
  }, 120_000);

  test('a member of A reads, inserts, updates and deletes projects in A', async () => {
    const member = flows.operations(stack.edgeUrl, { token: tokens.memberA, tenantSlug: 'acme' });
    const inserted = await member.insert('Apollo');
    expect(inserted).toMatchObject({ name: 'Apollo', tenant_id: ids.tenantA });
    expect((await member.projects()).map((project) => project.id)).toContain(inserted!.id);
    expect(await member.project(inserted!.id)).toMatchObject({ id: inserted!.id, tenant_id: ids.tenantA });
    expect(await member.rename(inserted!.id, 'Apollo 11')).toMatchObject({ affected_rows: 1, returning: [{ name: 'Apollo 11' }] });
    expect(await member.remove(inserted!.id)).toBe(1);
    expect(await member.project(inserted!.id)).toBeNull();
  });

  test("every attempt on B's rows fails: filters return nothing, mutations affect 0 rows or are refused", async () => {
    const ownerB = flows.operations(stack.edgeUrl, { token: tokens.ownerB, host: hostOf('beta') });
    const secret = await ownerB.insert('Beta secret');
    for (const token of [tokens.memberA, tokens.ownerA, tokens.adminA]) {
      const a = flows.operations(stack.edgeUrl, { token, tenantSlug: 'acme' });
      expect((await a.projects()).filter((project) => project.tenant_id !== ids.tenantA)).toEqual([]);
      expect(await a.project(secret!.id)).toBeNull();
      expect(await a.rename(secret!.id, 'pwned')).toMatchObject({ affected_rows: 0, returning: [] });
      expect(await a.remove(secret!.id)).toBe(0);
      // tenant_id is no insert column: the operation does not even validate for a tenant role.
      expect((await flows.refusal(a.insertInto(ids.tenantB, 'planted'))).message).toMatch(/tenant_id/);
    }
    expect(await ownerB.project(secret!.id)).toMatchObject({ name: 'Beta secret', tenant_id: ids.tenantB });
  });

  // Hasura's role `admin` is its built-in superuser: a token whose role is "admin" bypasses
  // every permission. The tenant admin must reach Hasura as `tenant_admin`
  // (scripts/hasura/registry.ts, HASURA_ROLE); this guards the auth service's mapping.
  test("a tenant admin's token is not Hasura's admin: filtered like every tenant role", async () => {
    const claims = JSON.parse(Buffer.from(tokens.adminA.split('.')[1]!, 'base64url').toString('utf8'))['https://hasura.io/jwt/claims'];
    expect(claims['x-hasura-default-role']).toBe('tenant_admin');
    expect(claims['x-hasura-allowed-roles']).toEqual(['tenant_admin']);
    const admin = flows.operations(stack.edgeUrl, { token: tokens.adminA, tenantSlug: 'acme' });
    expect((await admin.projects()).filter((project) => project.tenant_id !== ids.tenantA)).toEqual([]);
  });

  test("a token of A on B's subdomain is refused at the edge", async () => {
    const crossed = await flows.refusal(flows.operations(stack.edgeUrl, { token: tokens.memberA, host: hostOf('beta') }).projects());
    expect(crossed).toMatchObject({ status: 403, code: 'tenant_mismatch' });
    // …and on A's own subdomain it works.
    expect(await flows.operations(stack.edgeUrl, { token: tokens.memberA, host: hostOf('acme') }).projects()).toBeInstanceOf(Array);
  });

  test('X-Tenant-Slug with an API-key token works, and only for its tenant', async () => {
    const viaKey = flows.operations(stack.edgeUrl, { token: tokens.apiKeyA, tenantSlug: 'acme' });
    const created = await viaKey.insert('made with a key');
    expect(created).toMatchObject({ tenant_id: ids.tenantA });
    expect((await viaKey.projects()).every((project) => project.tenant_id === ids.tenantA)).toBe(true);
    expect(await flows.refusal(flows.operations(stack.edgeUrl, { token: tokens.apiKeyA, tenantSlug: 'beta' }).projects())).toMatchObject({
      status: 403,
      code: 'tenant_mismatch',
    });
  });

  test("a subscription streams only A's rows", async () => {
    const live = flows.subscribeProjects(stack.edgeUrl, { token: tokens.memberA, host: hostOf('acme') });
    try {
      await expect.poll(() => live.results.length, { timeout: 15_000 }).toBeGreaterThan(0);
      const ownerB = flows.operations(stack.edgeUrl, { token: tokens.ownerB, tenantSlug: 'beta' });
      await ownerB.insert('B, while A listens');
      const a = await flows.operations(stack.edgeUrl, { token: tokens.memberA, tenantSlug: 'acme' }).insert('A, while A listens');
      await expect.poll(() => live.results.at(-1)?.some((project) => project.id === a!.id), { timeout: 15_000 }).toBe(true);
      expect(live.errors).toEqual([]);
      expect(live.results.flat().filter((project) => project.tenant_id !== ids.tenantA)).toEqual([]);
    } finally {
      await live.close();
    }
  });

  test('anonymous: public plans and the branding of the tenant the host names, nothing private', async () => {
    const anonymous = flows.operations(stack.edgeUrl, { host: hostOf('acme') });
    const plans = await anonymous.plans();
    expect(plans.map((plan) => plan.id)).toEqual(['free', 'starter', 'pro']);
    expect(await anonymous.branding()).toEqual([{ slug: 'acme', name: 'Acme', settings: {} }]);
    expect((await flows.refusal(anonymous.settings())).message).toMatch(/tenant_settings/);
    expect((await flows.refusal(anonymous.projects())).message).toMatch(/projects/);
  });

  test('a member reads no private settings; hashes are in nobody\'s schema', async () => {
    const member = flows.operations(stack.edgeUrl, { token: tokens.memberA, tenantSlug: 'acme' });
    expect((await flows.refusal(member.settings())).message).toMatch(/tenant_settings/);
    const owner = flows.operations(stack.edgeUrl, { token: tokens.ownerA, tenantSlug: 'acme' });
    expect(((await owner.settings()) as { tenant_settings: unknown[] }).tenant_settings).toBeInstanceOf(Array);
  });

  test("every tenant role reads its plan's features; only owners and admins read billing", async () => {
    const starter = { has_feature_api_keys: true, has_feature_custom_domains: true, has_feature_sso: false, has_feature_audit_export: false };
    for (const token of [tokens.ownerA, tokens.adminA, tokens.memberA, tokens.apiKeyA]) {
      expect(await flows.operations(stack.edgeUrl, { token, tenantSlug: 'acme' }).features()).toEqual([starter]);
    }
    expect(await flows.operations(stack.edgeUrl, { token: tokens.ownerB, tenantSlug: 'beta' }).features()).toEqual([
      { has_feature_api_keys: false, has_feature_custom_domains: false, has_feature_sso: false, has_feature_audit_export: false },
    ]);
    for (const token of [tokens.ownerA, tokens.adminA]) {
      expect(await flows.operations(stack.edgeUrl, { token, tenantSlug: 'acme' }).subscription()).toBeInstanceOf(Array);
    }
    for (const token of [tokens.memberA, tokens.apiKeyA]) {
      expect((await flows.refusal(flows.operations(stack.edgeUrl, { token, tenantSlug: 'acme' }).subscription())).message).toMatch(/tenant_subscriptions/);
    }
  });

  test('a suspended tenant gets 403', async () => {
    await stack.cli(['tenant', 'suspend', 'beta', '--reason', 'e2e']);
    const suspended = flows.operations(stack.edgeUrl, { token: tokens.ownerB, host: hostOf('beta') });
    const outcome = () => flows.refusal(suspended.projects()).then((refused) => refused.code, () => 'served');
    await expect.poll(outcome, { timeout: 10_000, interval: 250 }).toBe('tenant_suspended');
    expect(await flows.refusal(suspended.projects())).toMatchObject({ status: 403 });
    // A is untouched.
    expect(await flows.operations(stack.edgeUrl, { token: tokens.memberA, tenantSlug: 'acme' }).projects()).toBeInstanceOf(Array);
  });
});
