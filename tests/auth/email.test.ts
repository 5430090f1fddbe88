import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bearer, expectError, MailSink, PASSWORD, PUBLIC_URL, signUp, startHarness, uniqueEmail, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

describe('email verification', () => {
  test('signup mails a link; following it verifies the address once', async () => {
    const user = await signUp(h.app, 'verify', false);
    const mail = await h.mail.waitFor(user.email, /Verify/);
    expect(mail.text).toContain(`${PUBLIC_URL}/verify-email?token=`);
    const token = MailSink.token(mail);
    await request(h.app).post('/auth/verify-email').send({ token }).expect(200);
    expect((await request(h.app).get('/auth/me').set(bearer(user.accessToken)).expect(200)).body.user.emailVerified).toBe(true);
    expectError((await request(h.app).post('/auth/verify-email').send({ token }).expect(400)).body, 'invalid_link');
    expectError((await request(h.app).post('/auth/verify-email').send({ token: 'made-up' }).expect(400)).body, 'invalid_link');
  });

  test('resend sends a fresh link; an expired link is refused', async () => {
    const user = await signUp(h.app, 'resend', false);
    const first = MailSink.token(await h.mail.waitFor(user.email, /Verify/));
    await h.admin.query("UPDATE auth_email_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1", [user.userId]);
    expectError((await request(h.app).post('/auth/verify-email').send({ token: first }).expect(400)).body, 'invalid_link');
    await request(h.app).post('/auth/verify-email/resend').set(bearer(user.accessToken)).expect(202);
    const mails = h.mail.mails.filter((mail) => mail.to.includes(user.email.toLowerCase()) && /Verify/.test(mail.subject));
    for (let i = 0; i < 25 && mails.length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      mails.splice(0, mails.length, ...h.mail.mails.filter((mail) => mail.to.includes(user.email.toLowerCase()) && /Verify/.test(mail.subject)));
    }
    const second = MailSink.token(mails.at(-1)!);
    expect(second).not.toBe(first);
    await request(h.app).post('/auth/verify-email').send({ token: second }).expect(200);
  });
});

describe('password reset', () => {
  test('the mailed link sets a new password once, revokes sessions; the old password stops working', async () => {
    const user = await signUp(h.app, 'reset');
    await request(h.app).post('/auth/password-reset').send({ email: user.email.toUpperCase() }).expect(202);
    const mail = await h.mail.waitFor(user.email, /Reset/);
    expect(mail.text).toContain(`${PUBLIC_URL}/password-reset?token=`);
    const token = MailSink.token(mail);
    const fresh = 'a brand new passphrase';
    await request(h.app).post('/auth/password-reset/confirm').send({ token, password: fresh }).expect(200);
    expectError((await request(h.app).post('/auth/password-reset/confirm').send({ token, password: fresh }).expect(400)).body, 'invalid_link');
    expectError((await request(h.app).post('/auth/refresh').send({ refreshToken: user.refreshToken }).expect(401)).body, 'invalid_refresh_token');
    expectError((await request(h.app).post('/auth/login').send({ email: user.email, password: PASSWORD }).expect(401)).body, 'invalid_credentials');
    await request(h.app).post('/auth/login').send({ email: user.email, password: fresh }).expect(200);
  });

  test('an unknown email gets the same 202 and no mail; a weak new password is 422; an expired link is 400', async () => {
    const ghost = uniqueEmail('ghost');
    const known = await signUp(h.app, 'known', false);
    const a = await request(h.app).post('/auth/password-reset').send({ email: ghost }).expect(202);
    const b = await request(h.app).post('/auth/password-reset').send({ email: known.email }).expect(202);
    expect(a.body).toEqual(b.body);
    const token = MailSink.token(await h.mail.waitFor(known.email, /Reset/));
    expect(h.mail.mails.some((mail) => mail.to.includes(ghost))).toBe(false);
    expectError((await request(h.app).post('/auth/password-reset/confirm').send({ token, password: 'short' }).expect(422)).body, 'validation_failed');
    await h.admin.query("UPDATE auth_email_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1 AND purpose = 'password_reset'", [known.userId]);
    expectError((await request(h.app).post('/auth/password-reset/confirm').send({ token, password: 'long enough password' }).expect(400)).body, 'invalid_link');
    // A verification token is not a reset token.
    const verify = MailSink.token(await h.mail.waitFor(known.email, /Verify/));
    expectError((await request(h.app).post('/auth/password-reset/confirm').send({ token: verify, password: 'long enough password' }).expect(400)).body, 'invalid_link');
  });
});
