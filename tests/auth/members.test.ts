import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mapMembershipError } from '../../services/auth/src/errors.js';
import { hasuraSessionJson } from '../../services/shared/src/db/tenant-context.js';
import { bearer, expectError, MailSink, signUp, startHarness, type Harness, type SignedUp } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

/** Confirms the user's address through the mailed link, as the mailbox's owner would. */
async function verifyEmail(user: SignedUp): Promise<void> {
  const mail = await h.mail.waitFor(user.email, /verify/i);
  await request(h.app).post('/auth/verify-email').send({ token: MailSink.token(mail) }).expect(200);
}

/** A signed-up user without a tenant whose address is verified: one the API may add directly. */
async function verifiedUser(label: string): Promise<SignedUp> {
  const user = await signUp(h.app, label, false);
  await verifyEmail(user);
  return user;
}

/** `by` adds `user` (verified) with `role` through the API, and the user switches into the tenant. */
async function join(owner: SignedUp, user: SignedUp, role: string, by: string = owner.accessToken): Promise<string> {
  await request(h.app).post('/auth/members').set(bearer(by)).send({ email: user.email, role }).expect(201);
  const switched = await request(h.app).post('/auth/switch-tenant').set(bearer(user.accessToken)).send({ tenant: owner.tenantId }).expect(200);
  return switched.body.accessToken as string;
}

describe('members', () => {
  test('owner adds, lists, changes and removes members', async () => {
    const owner = await signUp(h.app, 'mown');
    const user = await verifiedUser('muser');
    const added = await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: user.email.toUpperCase(), role: 'guest', permissions: ['billing:read'] }).expect(201);
    expect(added.body).toMatchObject({ userId: user.userId, role: 'guest', permissions: ['billing:read'] });
    const list = await request(h.app).get('/auth/members').set(bearer(owner.accessToken)).expect(200);
    expect(list.body.members.map((m: { userId: string; role: string }) => [m.userId, m.role]).sort()).toEqual([[owner.userId, 'owner'], [user.userId, 'guest']].sort());
    const changed = await request(h.app).patch(`/auth/members/${user.userId}`).set(bearer(owner.accessToken)).send({ role: 'admin' }).expect(200);
    expect(changed.body.role).toBe('admin');
    await request(h.app).delete(`/auth/members/${user.userId}`).set(bearer(owner.accessToken)).expect(204);
    expectError((await request(h.app).delete(`/auth/members/${user.userId}`).set(bearer(owner.accessToken)).expect(404)).body, 'member_not_found');
    // An address without an account is invited instead.
    const invited = await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: 'nobody-x@example.test', role: 'guest' }).expect(202);
    expect(invited.body).toMatchObject({ email: 'nobody-x@example.test', role: 'guest', status: 'pending' });
    await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: user.email }).expect(201);
    expectError((await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: user.email }).expect(409)).body, 'already_member');
    expectError((await request(h.app).patch(`/auth/members/not-a-uuid`).set(bearer(owner.accessToken)).send({ role: 'admin' }).expect(422)).body, 'validation_failed');
  });

  test('members and guests cannot manage; admins cannot touch owners nor grant what they lack', async () => {
    const owner = await signUp(h.app, 'rown');
    const [admin, member, other] = await Promise.all([verifiedUser('radm'), verifiedUser('rmem'), verifiedUser('roth')]);
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
    const next = await verifiedUser('lnext');
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
    const b = await verifiedUser('twob');
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
    const users = await Promise.all([0, 1, 2, 3, 4].map(() => verifiedUser('lim')));
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
  test('role changes are bounded by your own role: an admin makes nobody an owner', async () => {
    const owner = await signUp(h.app, 'bown');
    const [admin, member] = await Promise.all([verifiedUser('badm'), verifiedUser('bmem')]);
    await h.admin.query("UPDATE tenants SET plan_id = 'pro' WHERE id = $1", [owner.tenantId]);
    const adminToken = await join(owner, admin, 'admin');
    await join(owner, member, 'member');
    const promote = await request(h.app).patch(`/auth/members/${member.userId}`).set(bearer(adminToken)).send({ role: 'owner' }).expect(403);
    expectError(promote.body, 'forbidden');
    expect(promote.body.error.message).toMatch(/above your own/);
    expectError((await request(h.app).patch(`/auth/members/${admin.userId}`).set(bearer(adminToken)).send({ role: 'owner' }).expect(403)).body, 'forbidden');
    // {*} on their own row, the first step of the reported escalation.
    const star = await request(h.app).patch(`/auth/members/${admin.userId}`).set(bearer(adminToken)).send({ permissions: ['*'] }).expect(403);
    expect(star.body.error.message).toMatch(/your own permissions/);
    expectError((await request(h.app).post('/auth/invitations').set(bearer(adminToken)).send({ email: 'future-owner@example.test', role: 'owner' }).expect(403)).body, 'forbidden');
    const { rows } = await h.admin.query('SELECT user_id, role, permissions FROM tenant_members WHERE tenant_id = $1 AND user_id = ANY($2::uuid[]) ORDER BY role', [owner.tenantId, [admin.userId, member.userId]]);
    expect(rows).toEqual([
      { user_id: admin.userId, role: 'admin', permissions: [] },
      { user_id: member.userId, role: 'member', permissions: [] },
    ]);
  });

  test('a member holding the extra grant users:write promotes neither herself nor another member to admin', async () => {
    const owner = await signUp(h.app, 'down');
    const [deputy, member] = await Promise.all([verifiedUser('ddep'), verifiedUser('dmem')]);
    await h.admin.query("UPDATE tenants SET plan_id = 'pro' WHERE id = $1", [owner.tenantId]);
    const deputyToken = await join(owner, deputy, 'member');
    await join(owner, member, 'member');
    await request(h.app).patch(`/auth/members/${deputy.userId}`).set(bearer(owner.accessToken)).send({ permissions: ['users:write'] }).expect(200);

    const self = await request(h.app).patch(`/auth/members/${deputy.userId}`).set(bearer(deputyToken)).send({ role: 'admin' }).expect(403);
    expect(self.body.error.message).toMatch(/your own role/);
    expectError((await request(h.app).patch(`/auth/members/${member.userId}`).set(bearer(deputyToken)).send({ role: 'admin' }).expect(403)).body, 'forbidden');
    expectError((await request(h.app).patch(`/auth/members/${member.userId}`).set(bearer(deputyToken)).send({ permissions: ['users:*'] }).expect(403)).body, 'forbidden');
    expectError((await request(h.app).patch(`/auth/members/${owner.userId}`).set(bearer(deputyToken)).send({ role: 'guest' }).expect(403)).body, 'forbidden');
    // Within her own rank she manages: a member becomes a guest.
    await request(h.app).patch(`/auth/members/${member.userId}`).set(bearer(deputyToken)).send({ role: 'guest' }).expect(200);
    const { rows } = await h.admin.query<{ user_id: string; role: string }>('SELECT user_id, role FROM tenant_members WHERE tenant_id = $1 ORDER BY role', [owner.tenantId]);
    expect(rows.map((row) => [row.user_id, row.role]).sort()).toEqual([[owner.userId, 'owner'], [deputy.userId, 'member'], [member.userId, 'guest']].sort());
  });

  test("squatting: an unverified account registered for someone's address is not attached; the address is invited", async () => {
    const owner = await signUp(h.app, 'sqown');
    const squatter = await signUp(h.app, 'victim', false); // registered an address whose mailbox is not theirs
    const answer = await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: squatter.email, role: 'admin' }).expect(202);
    expect(answer.body).toMatchObject({ email: squatter.email, role: 'admin', status: 'pending' });
    const { rows } = await h.admin.query('SELECT 1 FROM tenant_members WHERE tenant_id = $1 AND user_id = $2', [owner.tenantId, squatter.userId]);
    expect(rows).toEqual([]);
    expectError((await request(h.app).post('/auth/switch-tenant').set(bearer(squatter.accessToken)).send({ tenant: owner.tenantId }).expect(403)).body, 'not_a_member');
    // The link goes to the mailbox, whose owner is the only one who can use it.
    const mail = await h.mail.waitFor(squatter.email, /invited/);
    expect(MailSink.token(mail)).toMatch(/.+/);
    const invitations = await request(h.app).get('/auth/invitations').set(bearer(owner.accessToken)).expect(200);
    expect(invitations.body.invitations).toEqual([expect.objectContaining({ id: answer.body.id, email: squatter.email, status: 'pending' })]);
    // Extra permissions cannot ride on an invitation: said, not dropped.
    const stranger = 'someone-else@example.test';
    expectError((await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: stranger, permissions: ['billing:read'] }).expect(422)).body, 'validation_failed');
    // Once the address is verified, the same request attaches the account.
    await verifyEmail(squatter);
    await request(h.app).delete(`/auth/invitations/${answer.body.id}`).set(bearer(owner.accessToken)).expect(204);
    await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: squatter.email, role: 'member' }).expect(201);
  });

  test("the database's refusal of a grant maps to 403 forbidden with its reason", async () => {
    const owner = await signUp(h.app, 'dbown');
    const admin = await verifiedUser('dbadm');
    await join(owner, admin, 'admin');
    const client = await h.pool.connect();
    let refusal: unknown;
    try {
      await client.query('BEGIN');
      await client.query("SELECT set_config('hasura.user', $1, true)", [hasuraSessionJson({ tenantId: owner.tenantId!, userId: admin.userId, role: 'admin' })]);
      await client.query("UPDATE tenant_members SET permissions = '{*}' WHERE tenant_id = $1 AND user_id = $2", [owner.tenantId, admin.userId]);
    } catch (error) {
      refusal = error;
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
    expect(refusal).toBeDefined();
    let mapped: unknown;
    try {
      mapMembershipError(refusal);
    } catch (error) {
      mapped = error;
    }
    expect(mapped).toMatchObject({ status: 403, code: 'forbidden', message: expect.stringMatching(/your own permissions/) });
  });
});
