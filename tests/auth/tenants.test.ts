import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bearer, decode, expectError, signUp, startHarness, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

/** Adds `userId` to `tenantId` with `role`, as the platform would (tests only). */
async function addMember(tenantId: string, userId: string, role: string) {
  await h.admin.query('INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, $3)', [tenantId, userId, role]);
}

describe('tenants and switching', () => {
  test("lists the caller's tenants with roles, not deleted ones", async () => {
    const a = await signUp(h.app, 'lista');
    const b = await signUp(h.app, 'listb');
    const c = await signUp(h.app, 'listc');
    await addMember(b.tenantId!, a.userId, 'guest');
    await addMember(c.tenantId!, a.userId, 'admin');
    await h.admin.query("UPDATE tenants SET status = 'deleted' WHERE id = $1", [c.tenantId]);
    const answer = await request(h.app).get('/auth/tenants').set(bearer(a.accessToken)).expect(200);
    const tenants = (answer.body as { tenants: { id: string; role: string; status: string }[] }).tenants;
    expect(tenants.map((tenant) => [tenant.id, tenant.role, tenant.status]).sort()).toEqual(
      [
        [a.tenantId, 'owner', 'active'],
        [b.tenantId, 'guest', 'active'],
      ].sort(),
    );
  });

  test('switch-tenant gives a token for the other tenant with the role there', async () => {
    const a = await signUp(h.app, 'swa');
    const b = await signUp(h.app, 'swb');
    await addMember(b.tenantId!, a.userId, 'member');
    const answer = await request(h.app).post('/auth/switch-tenant').set(bearer(a.accessToken)).send({ tenant: b.slug }).expect(200);
    expect(decode(answer.body.accessToken)['https://hasura.io/jwt/claims']).toEqual({
      'x-hasura-user-id': a.userId,
      'x-hasura-tenant-id': b.tenantId,
      'x-hasura-default-role': 'member',
      'x-hasura-allowed-roles': ['member'],
    });
    const me = await request(h.app).get('/auth/me').set(bearer(answer.body.accessToken)).expect(200);
    expect(me.body.tenant).toMatchObject({ id: b.tenantId, role: 'member' });
  });

  test('with a refresh token the session moves too: later refreshes stay in the new tenant', async () => {
    const a = await signUp(h.app, 'swra');
    const b = await signUp(h.app, 'swrb');
    await addMember(b.tenantId!, a.userId, 'admin');
    const moved = await request(h.app).post('/auth/switch-tenant').set(bearer(a.accessToken)).send({ tenant: b.tenantId, refreshToken: a.refreshToken }).expect(200);
    const refreshed = await request(h.app).post('/auth/refresh').send({ refreshToken: moved.body.refreshToken }).expect(200);
    expect(refreshed.body.tenant).toMatchObject({ id: b.tenantId, role: 'admin' });
    // The old refresh token was spent by the switch.
    expectError((await request(h.app).post('/auth/refresh').send({ refreshToken: a.refreshToken }).expect(401)).body, 'refresh_token_reused');
  });

  test('a member of A cannot switch to B, nor to a suspended tenant, nor with someone else’s refresh token', async () => {
    const a = await signUp(h.app, 'nosa');
    const b = await signUp(h.app, 'nosb');
    expectError((await request(h.app).post('/auth/switch-tenant').set(bearer(a.accessToken)).send({ tenant: b.slug }).expect(403)).body, 'not_a_member');
    expectError((await request(h.app).post('/auth/switch-tenant').set(bearer(a.accessToken)).send({ tenant: b.tenantId }).expect(403)).body, 'not_a_member');
    await addMember(b.tenantId!, a.userId, 'member');
    await h.admin.query("UPDATE tenants SET status = 'suspended' WHERE id = $1", [b.tenantId]);
    expectError((await request(h.app).post('/auth/switch-tenant').set(bearer(a.accessToken)).send({ tenant: b.slug }).expect(403)).body, 'tenant_inactive');
    expectError(
      (await request(h.app).post('/auth/switch-tenant').set(bearer(a.accessToken)).send({ tenant: a.slug, refreshToken: b.refreshToken }).expect(401)).body,
      'invalid_refresh_token',
    );
    expectError((await request(h.app).post('/auth/switch-tenant').send({ tenant: a.slug }).expect(401)).body, 'unauthenticated');
  });

  test('a user whose only tenant is suspended sees it marked, is refused into it, and switches to an active one (the session too)', async () => {
    const user = await signUp(h.app, 'susp');
    await h.admin.query("UPDATE tenants SET status = 'suspended' WHERE id = $1", [user.tenantId]);
    const listed = await request(h.app).get('/auth/tenants').set(bearer(user.accessToken)).expect(200);
    expect(listed.body.tenants).toEqual([{ id: user.tenantId, slug: user.slug, name: 'Tenant susp', status: 'suspended', suspensionReason: null, role: 'owner' }]);
    expectError((await request(h.app).post('/auth/switch-tenant').set(bearer(user.accessToken)).send({ tenant: user.slug }).expect(403)).body, 'tenant_inactive');
    // Meanwhile the session refreshes into no tenant, not into the suspended one.
    const refreshed = await request(h.app).post('/auth/refresh').send({ refreshToken: user.refreshToken }).expect(200);
    expect(refreshed.body.tenant).toBeNull();

    const other = await signUp(h.app, 'suspother');
    await addMember(other.tenantId!, user.userId, 'member');
    const switched = await request(h.app).post('/auth/switch-tenant').set(bearer(user.accessToken)).send({ tenant: other.slug }).expect(200);
    expect(switched.body.tenant).toEqual({ id: other.tenantId, slug: other.slug, role: 'member' });
    const moved = await request(h.app)
      .post('/auth/switch-tenant')
      .set(bearer(refreshed.body.accessToken))
      .send({ tenant: other.tenantId, refreshToken: refreshed.body.refreshToken })
      .expect(200);
    expect(moved.body.tenant).toEqual({ id: other.tenantId, slug: other.slug, role: 'member' });
    expect((await request(h.app).post('/auth/refresh').send({ refreshToken: moved.body.refreshToken }).expect(200)).body.tenant).toMatchObject({ id: other.tenantId });
  });
});
