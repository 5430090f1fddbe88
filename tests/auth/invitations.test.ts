import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bearer, decode, expectError, MailSink, PASSWORD, PUBLIC_URL, signUp, startHarness, uniqueEmail, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

async function invite(token: string, email: string, role = 'member') {
  const answer = await request(h.app).post('/auth/invitations').set(bearer(token)).send({ email, role }).expect(201);
  const mail = await h.mail.waitFor(email, /invited/);
  return { id: answer.body.id as string, mail, token: MailSink.token(mail) };
}

describe('invitations', () => {
  test('a new user follows the mailed link, signs up through it and lands in the tenant', async () => {
    const owner = await signUp(h.app, 'inv');
    const email = uniqueEmail('newbie');
    const sent = await invite(owner.accessToken, email, 'admin');
    expect(sent.mail.text).toContain(`${PUBLIC_URL}/invitations/accept?token=`);
    expect(sent.mail.subject).toContain('Tenant inv');
    const stored = await h.admin.query<{ token_hash: string }>('SELECT token_hash FROM tenant_invitations WHERE id = $1', [sent.id]);
    expect(stored.rows[0]!.token_hash).not.toBe(sent.token);
    const accepted = await request(h.app).post('/auth/invitations/accept').send({ token: sent.token, password: PASSWORD }).expect(200);
    expect(accepted.body.tenant).toMatchObject({ id: owner.tenantId, role: 'admin' });
    expect(decode(accepted.body.accessToken)['https://hasura.io/jwt/claims']).toMatchObject({ 'x-hasura-tenant-id': owner.tenantId, 'x-hasura-default-role': 'tenant_admin' });
    const me = await request(h.app).get('/auth/me').set(bearer(accepted.body.accessToken)).expect(200);
    expect(me.body.user).toMatchObject({ email, emailVerified: true });
    // Single use.
    expectError((await request(h.app).post('/auth/invitations/accept').send({ token: sent.token, password: PASSWORD }).expect(409)).body, 'invitation_not_pending');
    const list = await request(h.app).get('/auth/invitations').set(bearer(owner.accessToken)).expect(200);
    expect(list.body.invitations).toEqual([expect.objectContaining({ id: sent.id, status: 'accepted' })]);
  });

  test('an existing user accepts while logged in; without a token they are told to log in; another user cannot take it', async () => {
    const owner = await signUp(h.app, 'inve');
    const existing = await signUp(h.app, 'exist', false);
    const stranger = await signUp(h.app, 'strng', false);
    const sent = await invite(owner.accessToken, existing.email.toUpperCase(), 'guest');
    expectError((await request(h.app).post('/auth/invitations/accept').send({ token: sent.token, password: PASSWORD }).expect(409)).body, 'login_required');
    expectError((await request(h.app).post('/auth/invitations/accept').set(bearer(stranger.accessToken)).send({ token: sent.token }).expect(403)).body, 'email_mismatch');
    const accepted = await request(h.app).post('/auth/invitations/accept').set(bearer(existing.accessToken)).send({ token: sent.token }).expect(200);
    expect(accepted.body.tenant).toMatchObject({ id: owner.tenantId, role: 'guest' });
  });

  test('one pending invitation per email; resend replaces the link; revoked and expired ones cannot be used', async () => {
    const owner = await signUp(h.app, 'invr');
    const email = uniqueEmail('twice');
    const first = await invite(owner.accessToken, email);
    expectError((await request(h.app).post('/auth/invitations').set(bearer(owner.accessToken)).send({ email: email.toUpperCase() }).expect(409)).body, 'invitation_pending');
    const mailsBefore = h.mail.mails.length;
    await request(h.app).post(`/auth/invitations/${first.id}/resend`).set(bearer(owner.accessToken)).expect(200);
    await h.mail.waitFor(email, /invited/);
    expect(h.mail.mails.length).toBeGreaterThan(mailsBefore);
    const resent = MailSink.token(h.mail.mails.filter((mail) => mail.to.includes(email)).at(-1)!);
    expect(resent).not.toBe(first.token);
    expectError((await request(h.app).post('/auth/invitations/accept').send({ token: first.token, password: PASSWORD }).expect(404)).body, 'invitation_not_found');
    await request(h.app).delete(`/auth/invitations/${first.id}`).set(bearer(owner.accessToken)).expect(204);
    expectError((await request(h.app).post('/auth/invitations/accept').send({ token: resent, password: PASSWORD }).expect(409)).body, 'invitation_not_pending');
    expectError((await request(h.app).delete(`/auth/invitations/${first.id}`).set(bearer(owner.accessToken)).expect(409)).body, 'invitation_not_pending');
    expectError((await request(h.app).post(`/auth/invitations/${first.id}/resend`).set(bearer(owner.accessToken)).expect(409)).body, 'invitation_not_pending');

    // Expired: a new invitation, aged past its 7 days.
    const second = await invite(owner.accessToken, email);
    await h.admin.query("UPDATE tenant_invitations SET expires_at = now() - interval '1 second' WHERE id = $1", [second.id]);
    expectError((await request(h.app).post('/auth/invitations/accept').send({ token: second.token, password: PASSWORD }).expect(409)).body, 'invitation_not_pending');
    const list = await request(h.app).get('/auth/invitations').set(bearer(owner.accessToken)).expect(200);
    expect(list.body.invitations.find((i: { id: string }) => i.id === second.id).status).toBe('expired');
    // An expired invitation does not block a new one.
    await invite(owner.accessToken, email);
  });

  test('refusals: members cannot invite, admins cannot invite owners, foreign ids are 404, members cannot be re-invited', async () => {
    const owner = await signUp(h.app, 'invx');
    const other = await signUp(h.app, 'invy');
    const member = await signUp(h.app, 'invm', false);
    await h.admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'member')", [owner.tenantId, member.userId]);
    const memberToken = (await request(h.app).post('/auth/switch-tenant').set(bearer(member.accessToken)).send({ tenant: owner.slug }).expect(200)).body.accessToken as string;
    expectError((await request(h.app).post('/auth/invitations').set(bearer(memberToken)).send({ email: uniqueEmail('z') }).expect(403)).body, 'forbidden');
    // users:write lets a member invite, never above her own role; an admin invites no owner.
    await h.admin.query("UPDATE tenant_members SET permissions = '{users:write}' WHERE tenant_id = $1 AND user_id = $2", [owner.tenantId, member.userId]);
    const aboveOwn = await request(h.app).post('/auth/invitations').set(bearer(memberToken)).send({ email: uniqueEmail('z'), role: 'admin' }).expect(403);
    expect(aboveOwn.body.error.message).toMatch(/above your own role/);
    await request(h.app).post('/auth/invitations').set(bearer(memberToken)).send({ email: uniqueEmail('z'), role: 'guest' }).expect(201);
    await h.admin.query("UPDATE tenant_members SET role = 'admin', permissions = '{}' WHERE tenant_id = $1 AND user_id = $2", [owner.tenantId, member.userId]);
    expectError((await request(h.app).post('/auth/invitations').set(bearer(memberToken)).send({ email: uniqueEmail('z'), role: 'owner' }).expect(403)).body, 'forbidden');
    expectError((await request(h.app).post('/auth/invitations').set(bearer(owner.accessToken)).send({ email: member.email }).expect(409)).body, 'already_member');
    const foreign = await invite(other.accessToken, uniqueEmail('f'));
    expectError((await request(h.app).delete(`/auth/invitations/${foreign.id}`).set(bearer(owner.accessToken)).expect(404)).body, 'invitation_not_found');
    expectError((await request(h.app).post('/auth/invitations/accept').send({ token: 'nope', password: PASSWORD }).expect(404)).body, 'invitation_not_found');
  });

  test("an admin re-sends or revokes an owner's owner invitation: 403 and nothing changes; the owner can", async () => {
    const owner = await signUp(h.app, 'invo');
    const deputy = await signUp(h.app, 'invd', false);
    await h.admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'admin')", [owner.tenantId, deputy.userId]);
    const adminToken = (await request(h.app).post('/auth/switch-tenant').set(bearer(deputy.accessToken)).send({ tenant: owner.slug }).expect(200)).body.accessToken as string;
    const email = uniqueEmail('coowner');
    const sent = await invite(owner.accessToken, email, 'owner');
    const stored = async () =>
      (await h.admin.query('SELECT status, token_hash, expires_at, last_sent_at, revoked_at FROM tenant_invitations WHERE id = $1', [sent.id])).rows[0];
    const before = await stored();
    const mailsBefore = h.mail.mails.length;

    const resend = await request(h.app).post(`/auth/invitations/${sent.id}/resend`).set(bearer(adminToken)).expect(403);
    expectError(resend.body, 'forbidden');
    expect(resend.body.error.message).toMatch(/above your own role/);
    expectError((await request(h.app).delete(`/auth/invitations/${sent.id}`).set(bearer(adminToken)).expect(403)).body, 'forbidden');
    expect(await stored()).toEqual(before);
    expect(h.mail.mails.length).toBe(mailsBefore);
    // The owner may re-send and revoke it.
    await request(h.app).post(`/auth/invitations/${sent.id}/resend`).set(bearer(owner.accessToken)).expect(200);
    await request(h.app).delete(`/auth/invitations/${sent.id}`).set(bearer(owner.accessToken)).expect(204);
    expect(await stored()).toMatchObject({ status: 'revoked' });
    // An admin still manages invitations at or below their own role.
    const memberInvitation = await invite(adminToken, uniqueEmail('mate'), 'admin');
    await request(h.app).post(`/auth/invitations/${memberInvitation.id}/resend`).set(bearer(adminToken)).expect(200);
    await request(h.app).delete(`/auth/invitations/${memberInvitation.id}`).set(bearer(adminToken)).expect(204);
  });

  test('re-inviting an address whose invitation lapsed works for a member holding users:write, whatever role the lapsed one had', async () => {
    const owner = await signUp(h.app, 'invlp');
    const deputy = await signUp(h.app, 'invdp', false);
    await h.admin.query("INSERT INTO tenant_members (tenant_id, user_id, role, permissions) VALUES ($1, $2, 'member', '{users:write}')", [owner.tenantId, deputy.userId]);
    const deputyToken = (await request(h.app).post('/auth/switch-tenant').set(bearer(deputy.accessToken)).send({ tenant: owner.slug }).expect(200)).body.accessToken as string;
    const email = uniqueEmail('lapsed');
    const lapsed = await invite(owner.accessToken, email, 'owner');
    await h.admin.query("UPDATE tenant_invitations SET expires_at = now() - interval '1 second' WHERE id = $1", [lapsed.id]);
    await invite(deputyToken, email, 'guest');
    const { rows } = await h.admin.query('SELECT status FROM tenant_invitations WHERE id = $1', [lapsed.id]);
    expect(rows).toEqual([{ status: 'expired' }]);
  });

  test('inviting into a full tenant is refused with 409 and no mail: pending invitations take seats (free plan: 3)', async () => {
    const owner = await signUp(h.app, 'invl');
    const invited = [];
    for (const n of [1, 2]) invited.push(await invite(owner.accessToken, uniqueEmail(`l${n}`)));
    // The owner and two pending invitations fill the three seats: a third link could only fail.
    const third = uniqueEmail('l3');
    const mailsBefore = h.mail.mails.length;
    const refused = await request(h.app).post('/auth/invitations').set(bearer(owner.accessToken)).send({ email: third, role: 'member' }).expect(409);
    expectError(refused.body, 'user_limit_reached');
    const { rows } = await h.admin.query('SELECT 1 FROM tenant_invitations WHERE tenant_id = $1 AND lower(email) = $2', [owner.tenantId, third]);
    expect(rows).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(h.mail.mails.slice(mailsBefore).filter((mail) => mail.to.includes(third))).toEqual([]);

    // Each invitation already holds its seat: accepting both, at once, fills the tenant exactly.
    const answers = await Promise.all(invited.map(({ token }) => request(h.app).post('/auth/invitations/accept').send({ token, password: PASSWORD })));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
    const members = await h.admin.query<{ n: number }>('SELECT count(*)::int AS n FROM tenant_members WHERE tenant_id = $1', [owner.tenantId]);
    expect(members.rows[0]!.n).toBe(3);

    // Revoking a pending invitation frees its seat.
    const owner2 = await signUp(h.app, 'invl2');
    const [a] = [await invite(owner2.accessToken, uniqueEmail('la')), await invite(owner2.accessToken, uniqueEmail('lb'))];
    await request(h.app).delete(`/auth/invitations/${a!.id}`).set(bearer(owner2.accessToken)).expect(204);
    await invite(owner2.accessToken, uniqueEmail('lc'));
  });
});
