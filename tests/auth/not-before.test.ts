import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { memberTokenState } from '../../services/resolver/src/resolve.js';
import { bearer, decode, signUp, startHarness, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

/** What the edge asks through the resolver: the earliest iat still valid for this user in this tenant. */
async function notBefore(tenantId: string, userId: string): Promise<number | null> {
  return (await memberTokenState(h.pool, tenantId, userId))?.tokens_valid_after ?? null;
}

describe("the edge's membership check sees what the auth API changes", () => {
  test('tokens issued before a role change fall below it; a new token passes; removal gives NULL', async () => {
    const owner = await signUp(h.app, 'nbf');
    const user = await signUp(h.app, 'nbfu', false);
    // Only a verified account is attached directly (201); an unverified one gets an invitation (202).
    await h.admin.query('UPDATE users SET email_verified_at = now() WHERE id = $1', [user.userId]);
    await request(h.app).post('/auth/members').set(bearer(owner.accessToken)).send({ email: user.email, role: 'admin' }).expect(201);
    const before = (await request(h.app).post('/auth/switch-tenant').set(bearer(user.accessToken)).send({ tenant: owner.slug }).expect(200)).body.accessToken as string;
    const iatBefore = decode(before).iat as number;
    // The edge refuses iat <= tokens_valid_after, so a token that passes is strictly later.
    expect(iatBefore).toBeGreaterThan((await notBefore(owner.tenantId!, user.userId))!);
    // The role change lands in a later second than the first token.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await request(h.app).patch(`/auth/members/${user.userId}`).set(bearer(owner.accessToken)).send({ role: 'guest' }).expect(200);
    const floor = (await notBefore(owner.tenantId!, user.userId))!;
    expect(iatBefore).toBeLessThan(floor);
    const after = (await request(h.app).post('/auth/switch-tenant').set(bearer(user.accessToken)).send({ tenant: owner.slug }).expect(200)).body.accessToken as string;
    expect(decode(after).iat as number).toBeGreaterThan(floor);
    await request(h.app).delete(`/auth/members/${user.userId}`).set(bearer(owner.accessToken)).expect(204);
    expect(await notBefore(owner.tenantId!, user.userId)).toBeNull();
  });
});
