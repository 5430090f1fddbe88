import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bearer, decode, expectError, setPlan, signUp, startHarness, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

async function createKey(token: string, body: Record<string, unknown> = {}) {
  const answer = await request(h.app).post('/auth/api-keys').set(bearer(token)).send({ name: 'ci', ...body }).expect(201);
  return answer.body as { id: string; key: string; prefix: string; role: string };
}

describe('API keys and POST /auth/token', () => {
  test('created once, stored hashed, listed without secret, exchanged for a tenant token', async () => {
    const owner = await signUp(h.app, 'key');
    await setPlan(h, owner.tenantId);
    const created = await createKey(owner.accessToken, { role: 'member' });
    expect(created.key).toMatch(new RegExp(`^tnt_${created.prefix}_`));
    const stored = await h.admin.query<{ key_hash: string; last_used_at: Date | null }>('SELECT key_hash, last_used_at FROM api_keys WHERE id = $1', [created.id]);
    expect(stored.rows[0]!.key_hash).not.toContain(created.key);
    expect(stored.rows[0]!.last_used_at).toBeNull();
    const list = await request(h.app).get('/auth/api-keys').set(bearer(owner.accessToken)).expect(200);
    expect(JSON.stringify(list.body)).not.toContain(created.key);
    expect(list.body.apiKeys).toHaveLength(1);

    const exchanged = await request(h.app).post('/auth/token').set('X-Tenant-Slug', owner.slug!).send({ apiKey: created.key }).expect(200);
    const claims = decode(exchanged.body.accessToken);
    expect(claims.sub).toBe(owner.userId);
    expect(claims['https://hasura.io/jwt/claims']).toEqual({
      'x-hasura-user-id': owner.userId,
      'x-hasura-tenant-id': owner.tenantId,
      'x-hasura-default-role': 'member',
      'x-hasura-allowed-roles': ['member'],
      'x-hasura-api-key-id': created.id,
    });
    expect(exchanged.body.readOnly).toBe(false);
    expect(typeof claims.iat).toBe('number');
    const used = await h.admin.query<{ last_used_at: Date | null }>('SELECT last_used_at FROM api_keys WHERE id = $1', [created.id]);
    expect(used.rows[0]!.last_used_at).not.toBeNull();
    // Kept to the minute: an older stamp is refreshed by the next exchange.
    await h.admin.query("UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = $1", [created.id]);
    await request(h.app).post('/auth/token').send({ apiKey: created.key }).expect(200);
    const refreshed = await h.admin.query<{ age: number }>('SELECT extract(epoch FROM now() - last_used_at)::float AS age FROM api_keys WHERE id = $1', [created.id]);
    expect(refreshed.rows[0]!.age).toBeLessThan(60);
    // An API-key token is for Hasura, not for managing the tenant.
    expectError((await request(h.app).get('/auth/members').set(bearer(exchanged.body.accessToken)).expect(403)).body, 'api_key_not_allowed');
    expectError((await request(h.app).post('/auth/api-keys').set(bearer(exchanged.body.accessToken)).send({ name: 'x' }).expect(403)).body, 'api_key_not_allowed');
  });

  test("a key of A with X-Tenant-Slug of B (or X-Tenant-Id of B) is refused", async () => {
    const a = await signUp(h.app, 'keya');
    await setPlan(h, a.tenantId);
    const b = await signUp(h.app, 'keyb');
    await setPlan(h, b.tenantId);
    const created = await createKey(a.accessToken);
    expectError((await request(h.app).post('/auth/token').set('X-Tenant-Slug', b.slug!).send({ apiKey: created.key }).expect(403)).body, 'tenant_mismatch');
    expectError((await request(h.app).post('/auth/token').set('X-Tenant-Id', b.tenantId!).send({ apiKey: created.key }).expect(403)).body, 'tenant_mismatch');
  });

  test('revoked, expired, unknown, malformed and tampered keys are 401; a suspended tenant is 403', async () => {
    const owner = await signUp(h.app, 'keyr');
    await setPlan(h, owner.tenantId);
    const revoked = await createKey(owner.accessToken);
    await request(h.app).delete(`/auth/api-keys/${revoked.id}`).set(bearer(owner.accessToken)).expect(204);
    const expiring = await createKey(owner.accessToken, { expiresAt: new Date(Date.now() + 60_000).toISOString() });
    await h.admin.query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", [expiring.id]);
    const good = await createKey(owner.accessToken);
    const tampered = good.key.slice(0, -2) + (good.key.endsWith('AA') ? 'BB' : 'AA');
    for (const apiKey of [revoked.key, expiring.key, tampered, `tnt_${'0'.repeat(18)}_${'A'.repeat(43)}`, 'hello']) {
      expectError((await request(h.app).post('/auth/token').send({ apiKey }).expect(401)).body, 'invalid_api_key');
    }
    await h.admin.query("UPDATE tenants SET status = 'suspended' WHERE id = $1", [owner.tenantId]);
    expectError((await request(h.app).post('/auth/token').send({ apiKey: good.key }).expect(403)).body, 'tenant_inactive');
    expectError((await request(h.app).post('/auth/api-keys').set(bearer(owner.accessToken)).send({ name: 'x', expiresAt: '2001-01-01T00:00:00Z' }).expect(422)).body, 'validation_failed');
  });

  test("who may create keys: admins yes (not above their role), members no; another tenant's key is 404", async () => {
    const owner = await signUp(h.app, 'keyw');
    await setPlan(h, owner.tenantId);
    const other = await signUp(h.app, 'keyo');
    await setPlan(h, other.tenantId);
    const admin = await signUp(h.app, 'keyadm', false);
    const member = await signUp(h.app, 'keymem', false);
    await h.admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'admin'), ($1, $3, 'member')", [owner.tenantId, admin.userId, member.userId]);
    const adminToken = (await request(h.app).post('/auth/switch-tenant').set(bearer(admin.accessToken)).send({ tenant: owner.slug }).expect(200)).body.accessToken as string;
    const memberToken = (await request(h.app).post('/auth/switch-tenant').set(bearer(member.accessToken)).send({ tenant: owner.slug }).expect(200)).body.accessToken as string;
    await createKey(adminToken, { role: 'admin' });
    expectError((await request(h.app).post('/auth/api-keys').set(bearer(adminToken)).send({ name: 'x', role: 'owner' }).expect(403)).body, 'forbidden');
    expectError((await request(h.app).post('/auth/api-keys').set(bearer(memberToken)).send({ name: 'x' }).expect(403)).body, 'forbidden');
    expectError((await request(h.app).get('/auth/api-keys').set(bearer(memberToken)).expect(403)).body, 'forbidden');
    const foreign = await createKey(other.accessToken);
    expectError((await request(h.app).delete(`/auth/api-keys/${foreign.id}`).set(bearer(owner.accessToken)).expect(404)).body, 'api_key_not_found');
    await request(h.app).post('/auth/token').send({ apiKey: foreign.key }).expect(200);
  });

  test("a key never carries more than its creator's current role, and dies with the creator's membership", async () => {
    const owner = await signUp(h.app, 'keyc');
    await setPlan(h, owner.tenantId);
    const admin = await signUp(h.app, 'keycadm', false);
    await h.admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'admin')", [owner.tenantId, admin.userId]);
    const adminToken = (await request(h.app).post('/auth/switch-tenant').set(bearer(admin.accessToken)).send({ tenant: owner.slug }).expect(200)).body.accessToken as string;
    const created = await createKey(adminToken, { role: 'admin' });
    await request(h.app).patch(`/auth/members/${admin.userId}`).set(bearer(owner.accessToken)).send({ role: 'guest' }).expect(200);
    const exchanged = await request(h.app).post('/auth/token').send({ apiKey: created.key }).expect(200);
    expect(exchanged.body.tenant.role).toBe('guest');
    await request(h.app).delete(`/auth/members/${admin.userId}`).set(bearer(owner.accessToken)).expect(204);
    expectError((await request(h.app).post('/auth/token').send({ apiKey: created.key }).expect(401)).body, 'invalid_api_key');
  });
});
