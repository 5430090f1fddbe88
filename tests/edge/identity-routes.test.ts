import type { Server } from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bearer, expectError, listen, signUp, startHarness, type Harness, type SignedUp } from '../auth/harness.js';
import { BASE_DOMAIN, send, startEdgeHarness, type EdgeHarness } from './harness.js';

// The real auth service behind the real edge: what a user whose tenant was suspended sees.
let auth: Harness;
let authServer: Server;
let edge: EdgeHarness;
beforeAll(async () => {
  auth = await startHarness();
  const listening = await listen(auth.app);
  authServer = listening.server;
  edge = await startEdgeHarness({ AUTH_UPSTREAM: new URL(listening.base).host });
});
afterAll(async () => {
  await edge?.stop();
  await new Promise((resolve) => authServer?.close(resolve));
  await auth?.close();
});

const through = (urlPath: string, options: Parameters<typeof send>[2] = {}) => send(edge.edge.url, urlPath, options);

/** A user who owns one tenant, which the platform has suspended since their login. */
async function userOfSuspendedTenant(label: string): Promise<SignedUp> {
  const user = await signUp(auth.app, label);
  await edge.admin.query("UPDATE tenants SET status = 'suspended' WHERE id = $1", [user.tenantId]);
  return user;
}

async function addMember(tenantId: string, userId: string, role: string) {
  await edge.admin.query('INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, $3)', [tenantId, userId, role]);
}

const post = (urlPath: string, token: string, body: unknown, host = BASE_DOMAIN) =>
  through(urlPath, { method: 'POST', host, headers: { ...bearer(token), 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

describe('identity routes with a token of a suspended tenant, through the edge', () => {
  test('the user lists their tenants, the suspended one marked', async () => {
    const user = await userOfSuspendedTenant('idlist');
    const answer = await through('/auth/tenants', { headers: bearer(user.accessToken) });
    expect(answer.status, answer.text).toBe(200);
    expect(answer.json.tenants).toEqual([expect.objectContaining({ id: user.tenantId, slug: user.slug, status: 'suspended', role: 'owner' })]);
    // Also on the suspended tenant's own host, or naming it in a header: no tenant is resolved here.
    const onItsHost = await through('/auth/tenants', { host: `${user.slug}.${BASE_DOMAIN}`, headers: { ...bearer(user.accessToken), 'X-Tenant-Slug': user.slug! } });
    expect(onItsHost.status, onItsHost.text).toBe(200);
  });

  test('the user switches to an active tenant, with and without the refresh token; never into the suspended one', async () => {
    const user = await userOfSuspendedTenant('idswitch');
    const other = await signUp(auth.app, 'idother');
    await addMember(other.tenantId!, user.userId, 'admin');

    const into = await post('/auth/switch-tenant', user.accessToken, { tenant: user.slug });
    expect(into.status, into.text).toBe(403);
    expectError(into.json, 'tenant_inactive');

    const away = await post('/auth/switch-tenant', user.accessToken, { tenant: other.slug });
    expect(away.status, away.text).toBe(200);
    expect(away.json.tenant).toMatchObject({ id: other.tenantId, role: 'admin' });
    // The new token works on the active tenant's routes through the edge.
    const members = await through('/auth/members', { headers: bearer(away.json.accessToken) });
    expect(members.status, members.text).toBe(200);

    const moved = await post('/auth/switch-tenant', user.accessToken, { tenant: other.tenantId, refreshToken: user.refreshToken });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.json.tenant).toMatchObject({ id: other.tenantId });
  });

  test('the user sees who they are and logs out', async () => {
    const user = await userOfSuspendedTenant('idme');
    const me = await through('/auth/me', { headers: bearer(user.accessToken) });
    expect(me.status, me.text).toBe(200);
    expect(me.json.user).toMatchObject({ id: user.userId, email: user.email });

    const out = await post('/auth/logout', user.accessToken, { refreshToken: user.refreshToken });
    expect(out.status, out.text).toBe(204);
    const spent = await request(auth.app).post('/auth/refresh').send({ refreshToken: user.refreshToken }).expect(401);
    expectError(spent.body, 'invalid_refresh_token');
  });

  test("a tenant's routes stay closed: the token's suspended tenant, or a host or header naming it", async () => {
    const user = await userOfSuspendedTenant('idclosed');
    const byToken = await through('/auth/members', { headers: bearer(user.accessToken) });
    expect(byToken.status, byToken.text).toBe(403);
    expectError(byToken.json, 'tenant_suspended');

    const host = `${user.slug}.${BASE_DOMAIN}`;
    for (const answer of [
      await through('/auth/members', { host }),
      await through('/auth/invitations', { host, headers: bearer(user.accessToken) }),
      await through('/storage/file', { host }),
      await through('/v1/graphql', { method: 'POST', headers: { 'X-Tenant-Slug': user.slug!, 'Content-Type': 'application/json' }, body: '{}' }),
      await post('/auth/login', user.accessToken, { email: user.email, password: 'irrelevant' }, host),
    ]) {
      expect(answer.status, answer.text).toBe(403);
      expect(JSON.stringify(answer.json)).toContain('tenant_suspended');
    }
  });

  test('only the identity routes themselves are opened: neighbours and look-alike paths are not', async () => {
    const user = await userOfSuspendedTenant('idpaths');
    for (const path of ['/auth/tenants/', '/auth/tenants/x', '/auth/me/', '/auth/TENANTS', '/auth/tenantsx', '/auth/members']) {
      const answer = await through(path, { headers: bearer(user.accessToken) });
      expect(answer.status, `${path}: ${answer.text}`).toBe(403);
      expectError(answer.json, 'tenant_suspended');
    }
  });
});
