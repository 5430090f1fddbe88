import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { send, startEdgeHarness, tokenFor, type EdgeHarness } from './harness.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => Math.floor(Date.now() / 1000);

let harness: EdgeHarness;
beforeAll(async () => {
  harness = await startEdgeHarness();
});
afterAll(() => harness?.stop());

async function memberOf(tenantId: string, role = 'member'): Promise<string> {
  const { rows } = await harness.admin.query<{ id: string }>('INSERT INTO users (email) VALUES ($1) RETURNING id', [
    `edge-${randomBytes(5).toString('hex')}@example.test`,
  ]);
  await harness.admin.query('INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, $3)', [tenantId, rows[0]!.id, role]);
  return rows[0]!.id;
}

const call = (slug: string, token: string) =>
  send(harness.edge.url, '/storage/x', { headers: { 'X-Tenant-Slug': slug, Authorization: `Bearer ${token}` } });

/** Polls until the edge answers `status`; returns the milliseconds it took. */
async function until(status: number, request: () => Promise<{ status: number }>, limitMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    if ((await request()).status === status) return Date.now() - started;
    if (Date.now() - started > limitMs) throw new Error(`no ${status} within ${limitMs} ms`);
    await sleep(100);
  }
}

describe("tokens follow the member's fate at the edge", () => {
  test("a member's token passes; a stranger's token, or one issued before the membership, does not", async () => {
    const tenant = await harness.createTenant();
    const member = await memberOf(tenant.id);
    expect((await call(tenant.slug, tokenFor(tenant.id, { userId: member }))).status).toBe(200);
    expect((await call(tenant.slug, tokenFor(tenant.id, { userId: member, issuedAt: now() - 60 }))).status).toBe(401);
    const stranger = await call(tenant.slug, tokenFor(tenant.id, { userId: await memberOf((await harness.createTenant()).id) }));
    expect([stranger.status, stranger.json.error.code]).toEqual([401, 'token_revoked']);
  });

  test('a removed member is refused within 5 seconds', async () => {
    const tenant = await harness.createTenant();
    const member = await memberOf(tenant.id);
    const token = tokenFor(tenant.id, { userId: member });
    expect((await call(tenant.slug, token)).status).toBe(200);
    await harness.admin.query('DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2', [tenant.id, member]);
    expect(await until(401, () => call(tenant.slug, token), 5_000)).toBeLessThanOrEqual(5_000);
  });

  test("after a role change, tokens issued before it are refused within 5 seconds; new ones pass", async () => {
    const tenant = await harness.createTenant();
    const member = await memberOf(tenant.id, 'admin');
    const before = tokenFor(tenant.id, { userId: member });
    expect((await call(tenant.slug, before)).status).toBe(200);
    // iat has whole seconds: a change within the token's own second is not told apart.
    await sleep(1_100);
    await harness.admin.query("UPDATE tenant_members SET role = 'guest' WHERE tenant_id = $1 AND user_id = $2", [tenant.id, member]);
    expect(await until(401, () => call(tenant.slug, before), 5_000)).toBeLessThanOrEqual(5_000);
    const response = await call(tenant.slug, before);
    expect(response.json.error.code).toBe('token_revoked');
    expect((await call(tenant.slug, tokenFor(tenant.id, { userId: member, issuedAt: now() + 1 }))).status).toBe(200);
  });

  test('a purge of the tenant applies membership changes at once', async () => {
    const tenant = await harness.createTenant();
    const member = await memberOf(tenant.id);
    const token = tokenFor(tenant.id, { userId: member });
    expect((await call(tenant.slug, token)).status).toBe(200);
    await harness.admin.query('DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2', [tenant.id, member]);
    await send(harness.edge.url, '/_edge/purge', { method: 'POST', body: JSON.stringify({ tenant_id: tenant.id }) });
    expect((await call(tenant.slug, token)).status).toBe(401);
  });

  test("tokens without a user are not membership-checked; API-key tokens are, as their creator's; a malformed user claim is refused", async () => {
    const tenant = await harness.createTenant();
    expect((await call(tenant.slug, tokenFor(tenant.id))).status).toBe(200);
    const apiKeyToken = (userId: string) => tokenFor(tenant.id, { userId, hasuraClaims: { 'x-hasura-api-key-id': 'key' } });
    expect((await call(tenant.slug, apiKeyToken(await memberOf(tenant.id)))).status).toBe(200);
    expect((await call(tenant.slug, apiKeyToken(await memberOf((await harness.createTenant()).id)))).status).toBe(401);
    const malformed = await call(tenant.slug, tokenFor(tenant.id, { userId: 'not-a-uuid' }));
    expect([malformed.status, malformed.json.error.code]).toEqual([401, 'invalid_token']);
  });
});
