import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bearer, decode, expectError, setPlan, signUp, startHarness, type Harness, type SignedUp } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

async function staffUser(): Promise<SignedUp> {
  const staff = await signUp(h.app, 'staff', false);
  await h.admin.query('UPDATE users SET is_staff = true WHERE id = $1', [staff.userId]);
  return staff;
}

describe('platform staff', () => {
  test('staff list tenants across the platform and read members; each read is audited', async () => {
    const staff = await staffUser();
    const a = await signUp(h.app, 'stfa');
    const list = await request(h.app).get('/auth/staff/tenants').query({ search: a.slug }).set(bearer(staff.accessToken)).expect(200);
    expect(list.body.tenants).toEqual([expect.objectContaining({ id: a.tenantId, slug: a.slug, status: 'active', memberCount: 1 })]);
    const members = await request(h.app).get(`/auth/staff/tenants/${a.tenantId}/members`).set(bearer(staff.accessToken)).expect(200);
    expect(members.body.members).toEqual([expect.objectContaining({ userId: a.userId, role: 'owner' })]);
    const { rows } = await h.admin.query<{ action: string; tenant_id: string | null }>('SELECT action, tenant_id FROM audit_log WHERE actor_user_id = $1 ORDER BY id', [staff.userId]);
    expect(rows).toEqual([
      { action: 'staff.list_tenants', tenant_id: null },
      { action: 'staff.read_members', tenant_id: a.tenantId },
    ]);
    expectError((await request(h.app).get(`/auth/staff/tenants/${crypto.randomUUID()}/members`).set(bearer(staff.accessToken)).expect(404)).body, 'tenant_not_found');
  });

  test('impersonation: a 5-minute token with an act claim, a required reason, an audit entry', async () => {
    const staff = await staffUser();
    const a = await signUp(h.app, 'impa');
    expectError(
      (await request(h.app).post('/auth/staff/impersonate').set(bearer(staff.accessToken)).send({ tenantId: a.tenantId, userId: a.userId }).expect(422)).body,
      'validation_failed',
    );
    const reason = 'support ticket #4242: cannot see projects';
    const answer = await request(h.app).post('/auth/staff/impersonate').set(bearer(staff.accessToken)).send({ tenantId: a.tenantId, userId: a.userId, reason }).expect(200);
    const claims = decode(answer.body.accessToken) as { sub: string; act: { sub: string }; iat: number; exp: number; 'https://hasura.io/jwt/claims': Record<string, unknown> };
    expect(claims.sub).toBe(a.userId);
    expect(claims.act).toEqual({ sub: staff.userId });
    expect(claims.exp - claims.iat).toBeLessThanOrEqual(300);
    // Read-only in Hasura itself: the owner's read-only twin, and nothing else to switch to.
    expect(claims['https://hasura.io/jwt/claims']).toEqual({
      'x-hasura-user-id': a.userId,
      'x-hasura-tenant-id': a.tenantId,
      'x-hasura-default-role': 'owner_readonly',
      'x-hasura-allowed-roles': ['owner_readonly'],
    });
    expect(answer.body).toMatchObject({ role: 'owner', readOnly: true });
    const { rows } = await h.admin.query('SELECT action, target_id, reason, tenant_id FROM audit_log WHERE actor_user_id = $1', [staff.userId]);
    expect(rows).toEqual([{ action: 'staff.impersonate', target_id: a.userId, reason, tenant_id: a.tenantId }]);
    // The impersonation token reads, but changes nothing on /auth and cannot switch tenant or act as staff.
    const me = await request(h.app).get('/auth/me').set(bearer(answer.body.accessToken)).expect(200);
    expect(me.body.actor).toBe(staff.userId);
    await request(h.app).get('/auth/members').set(bearer(answer.body.accessToken)).expect(200);
    expectError((await request(h.app).post('/auth/api-keys').set(bearer(answer.body.accessToken)).send({ name: 'x' }).expect(403)).body, 'forbidden');
    expectError((await request(h.app).post('/auth/switch-tenant').set(bearer(answer.body.accessToken)).send({ tenant: a.slug }).expect(403)).body, 'forbidden');
    expectError((await request(h.app).get('/auth/staff/tenants').set(bearer(answer.body.accessToken)).expect(403)).body, 'forbidden');
  });

  test('non-staff, API-key tokens and a revoked staff flag are refused; only members of active tenants are impersonated', async () => {
    const staff = await staffUser();
    const owner = await signUp(h.app, 'nstf');
    await setPlan(h, owner.tenantId);
    const outsider = await signUp(h.app, 'nstfo', false);
    expectError((await request(h.app).get('/auth/staff/tenants').set(bearer(owner.accessToken)).expect(403)).body, 'forbidden');
    expectError(
      (await request(h.app).post('/auth/staff/impersonate').set(bearer(owner.accessToken)).send({ tenantId: owner.tenantId, userId: owner.userId, reason: 'a long enough reason' }).expect(403)).body,
      'forbidden',
    );
    const key = await request(h.app).post('/auth/api-keys').set(bearer(owner.accessToken)).send({ name: 'k' }).expect(201);
    const keyToken = (await request(h.app).post('/auth/token').send({ apiKey: key.body.key }).expect(200)).body.accessToken as string;
    expectError((await request(h.app).get('/auth/staff/tenants').set(bearer(keyToken)).expect(403)).body, 'forbidden');
    expectError(
      (await request(h.app).post('/auth/staff/impersonate').set(bearer(staff.accessToken)).send({ tenantId: owner.tenantId, userId: outsider.userId, reason: 'a long enough reason' }).expect(404)).body,
      'member_not_found',
    );
    await h.admin.query("UPDATE tenants SET status = 'suspended' WHERE id = $1", [owner.tenantId]);
    expectError(
      (await request(h.app).post('/auth/staff/impersonate').set(bearer(staff.accessToken)).send({ tenantId: owner.tenantId, userId: owner.userId, reason: 'a long enough reason' }).expect(403)).body,
      'tenant_inactive',
    );
    await h.admin.query('UPDATE users SET is_staff = false WHERE id = $1', [staff.userId]);
    expectError((await request(h.app).get('/auth/staff/tenants').set(bearer(staff.accessToken)).expect(403)).body, 'forbidden');
  });
});
