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

/** The second from which the member's tokens count, as the resolver tells the edge. */
async function tokensValidAfter(tenantId: string, userId: string): Promise<number> {
  const { rows } = await harness.admin.query<{ second: string }>(
    'SELECT floor(extract(epoch FROM tokens_valid_after)) AS second FROM tenant_members WHERE tenant_id = $1 AND user_id = $2',
    [tenantId, userId],
  );
  return Number(rows[0]!.second);
}

/**
 * A token as the auth service issues it: in a later second than the member's last change
 * (the edge refuses the change's own second, and the auth service waits it out).
 */
async function validToken(tenantId: string, userId: string, hasuraClaims: Record<string, unknown> = {}): Promise<string> {
  return tokenFor(tenantId, { userId, issuedAt: (await tokensValidAfter(tenantId, userId)) + 1, hasuraClaims });
}

const purge = (tenantId: string) => send(harness.edge.url, '/_edge/purge', { method: 'POST', body: JSON.stringify({ tenant_id: tenantId }) });

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
    expect((await call(tenant.slug, await validToken(tenant.id, member))).status).toBe(200);
    expect((await call(tenant.slug, tokenFor(tenant.id, { userId: member, issuedAt: now() - 60 }))).status).toBe(401);
    const stranger = await call(tenant.slug, tokenFor(tenant.id, { userId: await memberOf((await harness.createTenant()).id) }));
    expect([stranger.status, stranger.json.error.code]).toEqual([401, 'token_revoked']);
  });

  test('a removed member is refused within 5 seconds', async () => {
    const tenant = await harness.createTenant();
    const member = await memberOf(tenant.id);
    const token = await validToken(tenant.id, member);
    expect((await call(tenant.slug, token)).status).toBe(200);
    await harness.admin.query('DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2', [tenant.id, member]);
    expect(await until(401, () => call(tenant.slug, token), 5_000)).toBeLessThanOrEqual(5_000);
  });

  test("after a role change, tokens issued before it are refused within 5 seconds; new ones pass", async () => {
    const tenant = await harness.createTenant();
    const member = await memberOf(tenant.id, 'admin');
    const before = await validToken(tenant.id, member);
    expect((await call(tenant.slug, before)).status).toBe(200);
    // The token counts from the second after the join; the demotion must not come before that second.
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
    const token = await validToken(tenant.id, member);
    expect((await call(tenant.slug, token)).status).toBe(200);
    await harness.admin.query('DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2', [tenant.id, member]);
    await purge(tenant.id);
    expect((await call(tenant.slug, token)).status).toBe(401);
  });

  test("tokens without a user are not membership-checked; API-key tokens are, as their creator's; a malformed user claim is refused", async () => {
    const tenant = await harness.createTenant();
    expect((await call(tenant.slug, tokenFor(tenant.id))).status).toBe(200);
    const apiKeyClaims = { 'x-hasura-api-key-id': 'key' };
    expect((await call(tenant.slug, await validToken(tenant.id, await memberOf(tenant.id), apiKeyClaims))).status).toBe(200);
    const stranger = await memberOf((await harness.createTenant()).id);
    expect((await call(tenant.slug, tokenFor(tenant.id, { userId: stranger, hasuraClaims: apiKeyClaims }))).status).toBe(401);
    const malformed = await call(tenant.slug, tokenFor(tenant.id, { userId: 'not-a-uuid' }));
    expect([malformed.status, malformed.json.error.code]).toEqual([401, 'invalid_token']);
  });

  test('a token issued in the same second as a role change, before it, is refused; one issued the next second passes', async () => {
    const tenant = await harness.createTenant();
    const member = await memberOf(tenant.id, 'admin');
    // Start early in a second (later than the join's), so the token and the demotion share it.
    await sleep(1_000 - (Date.now() % 1_000) + 20);
    const issuedAt = now();
    const sameSecond = tokenFor(tenant.id, { userId: member, issuedAt });
    expect((await call(tenant.slug, sameSecond)).status, 'valid before the change (and now cached)').toBe(200);
    await harness.admin.query("UPDATE tenant_members SET role = 'guest' WHERE tenant_id = $1 AND user_id = $2", [tenant.id, member]);
    const changedAt = await tokensValidAfter(tenant.id, member);
    expect(changedAt, 'the demotion landed in the token\'s second').toBe(issuedAt);
    // The edge caches membership answers for a few seconds: drop them, as the purge test above does.
    await purge(tenant.id);
    const refused = await call(tenant.slug, sameSecond);
    expect([refused.status, refused.json.error.code]).toEqual([401, 'token_revoked']);
    expect((await call(tenant.slug, tokenFor(tenant.id, { userId: member, issuedAt: changedAt + 1 }))).status).toBe(200);
  });

  test("the same second also counts for a member's own join: a token stamped with it is refused", async () => {
    const tenant = await harness.createTenant();
    const member = await memberOf(tenant.id);
    const joined = await tokensValidAfter(tenant.id, member);
    const refused = await call(tenant.slug, tokenFor(tenant.id, { userId: member, issuedAt: joined }));
    expect([refused.status, refused.json.error.code]).toEqual([401, 'token_revoked']);
    expect((await call(tenant.slug, tokenFor(tenant.id, { userId: member, issuedAt: joined + 1 }))).status).toBe(200);
  });
});
