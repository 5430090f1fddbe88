import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bearer, expectError, signUp, startHarness, type Harness, type SignedUp } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

/** The owner adds `user` with `role` through the API, and the user switches into the tenant. */
async function join(owner: SignedUp, user: SignedUp, role: string): Promise<string> {
  await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: user.email, role }).expect(201);
  const switched = await request(h.app).post('/auth/switch-tenant').set(bearer(user.accessToken)).send({ tenant: owner.tenantId }).expect(200);
  return switched.body.accessToken as string;
}

describe('members', () => {
  test('owner adds, lists, changes and removes members', async () => {
    const owner = await signUp(h.app, 'mown');
    const user = await signUp(h.app, 'muser', false);
    const added = await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: user.email.toUpperCase(), role: 'guest', permissions: ['billing:read'] }).expect(201);
    expect(added.body).toMatchObject({ userId: user.userId, role: 'guest', permissions: ['billing:read'] });
    const list = await request(h.app).get('/auth/members').set(bearer(owner.accessToken)).expect(200);
    expect(list.body.members.map((m: { userId: string; role: string }) => [m.userId, m.role]).sort()).toEqual([[owner.userId, 'owner'], [user.userId, 'guest']].sort());
    const changed = await request(h.app).patch(`/auth/members/${user.userId}`).set(bearer(owner.accessToken)).send({ role: 'admin' }).expect(200);
    expect(changed.body.role).toBe('admin');
    await request(h.app).delete(`/auth/members/${user.userId}`).set(bearer(owner.accessToken)).expect(204);
    expectError((await request(h.app).delete(`/auth/members/${user.userId}`).set(bearer(owner.accessToken)).expect(404)).body, 'member_not_found');
    expectError((await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: 'nobody-x@example.test' }).expect(404)).body, 'user_not_found');
    await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: user.email }).expect(201);
    expectError((await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: user.email }).expect(409)).body, 'already_member');
    expectError((await request(h.app).patch(`/auth/members/not-a-uuid`).set(bearer(owner.accessToken)).send({ role: 'admin' }).expect(422)).body, 'validation_failed');
  });

  test('members and guests cannot manage; admins cannot touch owners nor grant what they lack', async () => {
    const owner = await signUp(h.app, 'rown');
    const admin = await signUp(h.app, 'radm', false);
    const member = await signUp(h.app, 'rmem', false);
    const other = await signUp(h.app, 'roth', false);
    await h.admin.query("UPDATE tenants SET plan_id = 'pro' WHERE id = $1", [owner.tenantId]);
    const adminToken = await join(owner, admin, 'admin');
    const memberToken = await join(owner, member, 'member');
    expectError((await request(h.app).get('/auth/members').set(bearer(memberToken)).expect(403)).body, 'forbidden');
    expectError((await request(h.app).post('/auth/members').set(bearer(memberToken)).send({ email: other.email }).expect(403)).body, 'forbidden');
    expectError((await request(h.app).post('/auth/members').set(bearer(adminToken)).send({ email: other.email, role: 'owner' }).expect(403)).body, 'forbidden');
    expectError((await request(h.app).post('/auth/members').set(bearer(adminToken)).send({ email: other.email, permissions: ['billing:write'] }).expect(403)).body, 'forbidden');
    expectError((await request(h.app).patch(`/auth/members/${owner.userId}`).set(bearer(adminToken)).send({ role: 'member' }).expect(403)).body, 'forbidden');
    expectError((await request(h.app).delete(`/auth/members/${owner.userId}`).set(bearer(adminToken)).expect(403)).body, 'forbidden');
    expectError((await request(h.app).post('/auth/members/transfer-ownership').set(bearer(adminToken)).send({ userId: admin.userId }).expect(403)).body, 'forbidden');
    // Admins manage non-owners.
    await request(h.app).post('/auth/members').set(bearer(adminToken)).send({ email: other.email, role: 'guest' }).expect(201);
    await request(h.app).patch(`/auth/members/${member.userId}`).set(bearer(adminToken)).send({ role: 'guest' }).expect(200);
    // Any member may leave; afterwards the old token manages nothing there.
    await request(h.app).delete(`/auth/members/${member.userId}`).set(bearer(memberToken)).expect(204);
    expectError((await request(h.app).get('/auth/members').set(bearer(memberToken)).expect(403)).body, 'not_a_member');
  });

  test('the last owner cannot be demoted or leave; after a transfer they can', async () => {
    const owner = await signUp(h.app, 'lown');
    const next = await signUp(h.app, 'lnext', false);
    expectError((await request(h.app).patch(`/auth/members/${owner.userId}`).set(bearer(owner.accessToken)).send({ role: 'admin' }).expect(409)).body, 'last_owner');
    expectError((await request(h.app).delete(`/auth/members/${owner.userId}`).set(bearer(owner.accessToken)).expect(409)).body, 'last_owner');
    await join(owner, next, 'member');
    await request(h.app).post('/auth/members/transfer-ownership').set(bearer(owner.accessToken)).send({ userId: next.userId }).expect(200);
    const { rows } = await h.admin.query<{ user_id: string; role: string }>('SELECT user_id, role FROM tenant_members WHERE tenant_id = $1 ORDER BY role', [owner.tenantId]);
    expect(rows.map((row) => [row.user_id, row.role]).sort()).toEqual([[owner.userId, 'admin'], [next.userId, 'owner']].sort());
    // The old owner's token still says owner, but the role is read afresh: no longer allowed to transfer.
    expectError((await request(h.app).post('/auth/members/transfer-ownership').set(bearer(owner.accessToken)).send({ userId: next.userId }).expect(403)).body, 'forbidden');
    await request(h.app).delete(`/auth/members/${owner.userId}`).set(bearer(owner.accessToken)).expect(204);
  });

  test('two owners stepping down at once: exactly one succeeds, the database keeps an owner', async () => {
    const a = await signUp(h.app, 'twoa');
    const b = await signUp(h.app, 'twob', false);
    const bToken = await join(a, b, 'owner');
    const answers = await Promise.all([
      request(h.app).patch(`/auth/members/${a.userId}`).set(bearer(a.accessToken)).send({ role: 'admin' }),
      request(h.app).patch(`/auth/members/${b.userId}`).set(bearer(bToken)).send({ role: 'admin' }),
    ]);
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 409]);
    expectError(answers.find((answer) => answer.status === 409)!.body, 'last_owner');
    const { rows } = await h.admin.query("SELECT 1 FROM tenant_members WHERE tenant_id = $1 AND role = 'owner'", [a.tenantId]);
    expect(rows).toHaveLength(1);
  });

  test('the user limit holds under concurrent adds (free plan: 3 users)', async () => {
    const owner = await signUp(h.app, 'limit');
    const users = await Promise.all([0, 1, 2, 3, 4].map(() => signUp(h.app, 'lim', false)));
    const answers = await Promise.all(users.map((user) => request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: user.email })));
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses).toEqual([201, 201, 409, 409, 409]);
    for (const answer of answers.filter((a) => a.status === 409)) expectError(answer.body, 'user_limit_reached');
    const { rows } = await h.admin.query<{ n: number }>('SELECT count(*)::int AS n FROM tenant_members WHERE tenant_id = $1', [owner.tenantId]);
    expect(rows[0]!.n).toBe(3);
  });

  test("the token's tenant is authoritative: a mismatching X-Tenant-Id or X-Tenant-Slug is 403", async () => {
    const a = await signUp(h.app, 'hdra');
    const b = await signUp(h.app, 'hdrb');
    expectError((await request(h.app).get('/auth/members').set(bearer(a.accessToken)).set('X-Tenant-Id', b.tenantId!).expect(403)).body, 'tenant_mismatch');
    expectError((await request(h.app).get('/auth/members').set(bearer(a.accessToken)).set('X-Tenant-Slug', b.slug!).expect(403)).body, 'tenant_mismatch');
    await request(h.app).get('/auth/members').set(bearer(a.accessToken)).set('X-Tenant-Id', a.tenantId!).set('X-Tenant-Slug', a.slug!).expect(200);
    // A user with no tenant in the token manages nothing.
    const solo = await signUp(h.app, 'hdrs', false);
    expectError((await request(h.app).get('/auth/members').set(bearer(solo.accessToken)).expect(403)).body, 'not_a_member');
  });
});
