import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bearer, decode, expectError, PASSWORD, signUp, startHarness, uniqueEmail, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

describe('signup, login, me', () => {
  test('signup with a tenant makes the user its owner and logs in', async () => {
    const owner = await signUp(h.app, 'signup');
    const me = await request(h.app).get('/auth/me').set(bearer(owner.accessToken)).expect(200);
    expect(me.body).toMatchObject({
      user: { id: owner.userId, email: owner.email, emailVerified: false, isStaff: false },
      tenant: { id: owner.tenantId, role: 'owner', permissions: [] },
      apiKeyId: null,
    });
    const { rows } = await h.admin.query('SELECT owner_user_id, slug FROM tenants WHERE id = $1', [owner.tenantId]);
    expect(rows[0]).toEqual({ owner_user_id: owner.userId, slug: owner.slug });
    const hash = await h.admin.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [owner.userId]);
    expect(hash.rows[0]!.password_hash).toMatch(/^\$argon2id\$/);
  });

  test('signup without a tenant gives a tenantless token (anonymous role, no tenant claim)', async () => {
    const user = await signUp(h.app, 'solo', false);
    const claims = decode(user.accessToken)['https://hasura.io/jwt/claims'];
    expect(claims).toEqual({ 'x-hasura-user-id': user.userId, 'x-hasura-default-role': 'anonymous', 'x-hasura-allowed-roles': ['anonymous'] });
    const me = await request(h.app).get('/auth/me').set(bearer(user.accessToken)).expect(200);
    expect(me.body.tenant).toBeNull();
  });

  test('a taken email (any case) or slug is 409; a bad body is 422; bad JSON is 400', async () => {
    const owner = await signUp(h.app, 'taken');
    expectError((await request(h.app).post('/auth/signup').send({ email: owner.email.toUpperCase(), password: PASSWORD }).expect(409)).body, 'email_in_use');
    expectError(
      (await request(h.app).post('/auth/signup').send({ email: uniqueEmail('t2'), password: PASSWORD, tenant: { slug: owner.slug, name: 'x' } }).expect(409)).body,
      'slug_taken',
    );
    // The failed signup left no account behind.
    const { rows } = await h.admin.query('SELECT 1 FROM users WHERE lower(email) = lower($1)', [owner.email.replace('taken', 't2')]);
    expect(rows).toHaveLength(0);
    expectError((await request(h.app).post('/auth/signup').send({ email: 'nope', password: 'short' }).expect(422)).body, 'validation_failed');
    expectError(
      (await request(h.app).post('/auth/signup').send({ email: uniqueEmail('r'), password: PASSWORD, tenant: { slug: 'admin', name: 'x' } }).expect(422)).body,
      'validation_failed',
    );
    const bad = await request(h.app).post('/auth/signup').set('Content-Type', 'application/json').send('{"email":').expect(400);
    expect(bad.body.error.code).toBe('bad_request');
    expect(JSON.stringify(bad.body)).not.toContain(' at ');
  });

  test('login: right password logs in (email case-insensitive); a wrong password and an unknown email get the same 401', async () => {
    const owner = await signUp(h.app, 'login');
    const ok = await request(h.app).post('/auth/login').send({ email: owner.email.toUpperCase(), password: PASSWORD }).expect(200);
    expect(ok.body.tenant).toMatchObject({ id: owner.tenantId, role: 'owner' });
    const wrong = await request(h.app).post('/auth/login').send({ email: owner.email, password: 'wrong password!!' }).expect(401);
    const unknown = await request(h.app).post('/auth/login').send({ email: uniqueEmail('ghost'), password: 'wrong password!!' }).expect(401);
    expect(wrong.body).toEqual(unknown.body);
    expectError(wrong.body, 'invalid_credentials');
  });

  test('login into a named tenant; a tenant the user is not in is 403', async () => {
    const a = await signUp(h.app, 'lta');
    const b = await signUp(h.app, 'ltb');
    const ok = await request(h.app).post('/auth/login').send({ email: a.email, password: PASSWORD, tenant: a.slug }).expect(200);
    expect(ok.body.tenant.id).toBe(a.tenantId);
    expectError((await request(h.app).post('/auth/login').send({ email: a.email, password: PASSWORD, tenant: b.slug }).expect(403)).body, 'not_a_member');
  });

  test('a disabled user cannot log in or refresh', async () => {
    const owner = await signUp(h.app, 'disabled');
    await h.admin.query('UPDATE users SET disabled_at = now() WHERE id = $1', [owner.userId]);
    expectError((await request(h.app).post('/auth/login').send({ email: owner.email, password: PASSWORD }).expect(403)).body, 'user_disabled');
    expectError((await request(h.app).post('/auth/refresh').send({ refreshToken: owner.refreshToken }).expect(401)).body, 'invalid_refresh_token');
  });
});

describe('refresh tokens', () => {
  test('rotate on every use; reusing a spent one revokes the whole family', async () => {
    const owner = await signUp(h.app, 'rotate');
    const first = await request(h.app).post('/auth/refresh').send({ refreshToken: owner.refreshToken }).expect(200);
    expect(first.body.refreshToken).not.toBe(owner.refreshToken);
    expect(decode(first.body.accessToken)['https://hasura.io/jwt/claims']).toMatchObject({ 'x-hasura-tenant-id': owner.tenantId, 'x-hasura-default-role': 'owner' });
    const second = await request(h.app).post('/auth/refresh').send({ refreshToken: first.body.refreshToken }).expect(200);
    // The attacker replays the first token: reuse.
    expectError((await request(h.app).post('/auth/refresh').send({ refreshToken: owner.refreshToken }).expect(401)).body, 'refresh_token_reused');
    // The legitimate holder's newest token died with the family.
    expectError((await request(h.app).post('/auth/refresh').send({ refreshToken: second.body.refreshToken }).expect(401)).body, 'invalid_refresh_token');
    const { rows } = await h.admin.query<{ revoked: number }>(
      "SELECT count(*)::int AS revoked FROM refresh_tokens WHERE user_id = $1 AND revoked_reason = 'reuse'",
      [owner.userId],
    );
    expect(rows[0]!.revoked).toBeGreaterThanOrEqual(1);
  });

  test('two concurrent refreshes of one token: one wins, the other is reuse', async () => {
    const owner = await signUp(h.app, 'race');
    const answers = await Promise.all([0, 1].map(() => request(h.app).post('/auth/refresh').send({ refreshToken: owner.refreshToken })));
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 401]);
  });

  test('expired, unknown and logged-out tokens are refused', async () => {
    const owner = await signUp(h.app, 'expire');
    await h.admin.query("UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1", [owner.userId]);
    expectError((await request(h.app).post('/auth/refresh').send({ refreshToken: owner.refreshToken }).expect(401)).body, 'invalid_refresh_token');
    expectError((await request(h.app).post('/auth/refresh').send({ refreshToken: 'x'.repeat(43) }).expect(401)).body, 'invalid_refresh_token');

    const other = await signUp(h.app, 'logout');
    const rotated = await request(h.app).post('/auth/refresh').send({ refreshToken: other.refreshToken }).expect(200);
    await request(h.app).post('/auth/logout').send({ refreshToken: rotated.body.refreshToken }).expect(204);
    expectError((await request(h.app).post('/auth/refresh').send({ refreshToken: rotated.body.refreshToken }).expect(401)).body, 'invalid_refresh_token');
    // Logging out an unknown token says nothing either way.
    await request(h.app).post('/auth/logout').send({ refreshToken: 'unknown-token' }).expect(204);
  });

  test('a refresh after the tenant was suspended yields a tenantless token', async () => {
    const owner = await signUp(h.app, 'suspended');
    await h.admin.query("UPDATE tenants SET status = 'suspended' WHERE id = $1", [owner.tenantId]);
    const answer = await request(h.app).post('/auth/refresh').send({ refreshToken: owner.refreshToken }).expect(200);
    expect(answer.body.tenant).toBeNull();
    expect(decode(answer.body.accessToken)['https://hasura.io/jwt/claims']).not.toHaveProperty('x-hasura-tenant-id');
  });
});
