import { createPublicKey, type JsonWebKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { exportPrivatePem, generateSigningKey, KeyRing } from '../../services/auth/src/keys.js';
import { TokenIssuer } from '../../services/auth/src/tokens.js';
import { AUDIENCE, bearer, decode, expectError, ISSUER, listen, setPlan, signUp, startHarness, type Harness } from './harness.js';

/**
 * The exact HASURA_GRAPHQL_JWT_SECRET for .env.example and the compose file, with the
 * test's issuer and audience substituted for the deployment's.
 */
export const HASURA_GRAPHQL_JWT_SECRET =
  '{"jwk_url":"http://auth:4002/auth/.well-known/jwks.json","issuer":"${AUTH_ISSUER}","audience":"${AUTH_AUDIENCE}","claims_namespace":"https://hasura.io/jwt/claims"}';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

/** What Hasura does with a JWT under a jwk_url config: find the key by kid, verify, check iss/aud, read the namespace. */
async function hasuraSession(config: { jwk_url: string; issuer: string; audience: string; claims_namespace: string }, token: string) {
  const jwks = (await (await fetch(config.jwk_url)).json()) as { keys: (JsonWebKey & { kid: string; alg: string })[] };
  const header = jwt.decode(token, { complete: true })!.header;
  const jwk = jwks.keys.find((key) => key.kid === header.kid);
  if (!jwk) throw new Error('kid not in JWKS');
  const publicKey = createPublicKey({ key: jwk, format: 'jwk' });
  const claims = jwt.verify(token, publicKey, { algorithms: [jwk.alg as jwt.Algorithm], issuer: config.issuer, audience: config.audience }) as Record<string, unknown>;
  const namespace = claims[config.claims_namespace] as Record<string, unknown>;
  return {
    'x-hasura-user-id': namespace['x-hasura-user-id'],
    'x-hasura-tenant-id': namespace['x-hasura-tenant-id'],
    'x-hasura-default-role': namespace['x-hasura-default-role'],
    'x-hasura-allowed-roles': namespace['x-hasura-allowed-roles'],
  };
}

describe('access tokens, JWKS and the Hasura contract', () => {
  test("Hasura's exact JWT config turns a service token into the session variables", async () => {
    const owner = await signUp(h.app, 'hasura');
    await setPlan(h, owner.tenantId);
    const { server, base } = await listen(h.app);
    try {
      const config = JSON.parse(
        HASURA_GRAPHQL_JWT_SECRET.replace('http://auth:4002', base).replace('${AUTH_ISSUER}', ISSUER).replace('${AUTH_AUDIENCE}', AUDIENCE),
      ) as { jwk_url: string; issuer: string; audience: string; claims_namespace: string };
      expect(await hasuraSession(config, owner.accessToken)).toEqual({
        'x-hasura-user-id': owner.userId,
        'x-hasura-tenant-id': owner.tenantId,
        'x-hasura-default-role': 'owner',
        'x-hasura-allowed-roles': ['owner'],
      });
      // Another audience or issuer is refused, as Hasura would.
      await expect(hasuraSession({ ...config, audience: 'someone-else' }, owner.accessToken)).rejects.toThrow(/audience/);
      await expect(hasuraSession({ ...config, issuer: 'https://evil' }, owner.accessToken)).rejects.toThrow(/issuer/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("a read-only key's token reaches Hasura as the read-only role only, with no scopes it would ignore", async () => {
    const owner = await signUp(h.app, 'hasuraro');
    await setPlan(h, owner.tenantId);
    const key = await request(h.app).post('/auth/api-keys').set(bearer(owner.accessToken)).send({ name: 'ro', role: 'admin', readOnly: true }).expect(201);
    const token = (await request(h.app).post('/auth/token').send({ apiKey: key.body.key }).expect(200)).body.accessToken as string;
    const { server, base } = await listen(h.app);
    try {
      const config = JSON.parse(
        HASURA_GRAPHQL_JWT_SECRET.replace('http://auth:4002', base).replace('${AUTH_ISSUER}', ISSUER).replace('${AUTH_AUDIENCE}', AUDIENCE),
      ) as { jwk_url: string; issuer: string; audience: string; claims_namespace: string };
      expect(await hasuraSession(config, token)).toEqual({
        'x-hasura-user-id': owner.userId,
        'x-hasura-tenant-id': owner.tenantId,
        'x-hasura-default-role': 'tenant_admin_readonly',
        'x-hasura-allowed-roles': ['tenant_admin_readonly'],
      });
      expect(Object.keys(decode(token)['https://hasura.io/jwt/claims'] as object).sort()).toEqual([
        'x-hasura-allowed-roles',
        'x-hasura-api-key-id',
        'x-hasura-default-role',
        'x-hasura-tenant-id',
        'x-hasura-user-id',
      ]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('every access token has kid, RS256, iat, exp ≤ 15 min, sub = x-hasura-user-id', async () => {
    const owner = await signUp(h.app, 'claims');
    await setPlan(h, owner.tenantId);
    const { header } = jwt.decode(owner.accessToken, { complete: true })!;
    expect(header).toMatchObject({ alg: 'RS256', kid: h.deps.keys.current.kid });
    const claims = decode(owner.accessToken) as { iat: number; exp: number; sub: string; iss: string; aud: string; 'https://hasura.io/jwt/claims': Record<string, unknown> };
    expect(claims.exp - claims.iat).toBeLessThanOrEqual(900);
    expect(Math.abs(claims.iat - Date.now() / 1000)).toBeLessThan(60);
    expect(claims.iss).toBe(ISSUER);
    expect(claims.aud).toBe(AUDIENCE);
    expect(claims['https://hasura.io/jwt/claims']['x-hasura-user-id']).toBe(claims.sub);
  });

  test('the JWKS publishes every key of the ring, public parts only', async () => {
    const response = await request(h.app).get('/auth/.well-known/jwks.json').expect(200);
    const keys = (response.body as { keys: Record<string, unknown>[] }).keys;
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: 'RSA', kid: h.deps.keys.current.kid, alg: 'RS256', use: 'sig' });
    expect(keys[0]).not.toHaveProperty('d');
  });

  test('rotation: a token signed by the retired key still verifies while the new key signs', async () => {
    const old = generateSigningKey();
    const fresh = generateSigningKey();
    const before = KeyRing.fromPems([{ kid: 'old', privateKeyPem: exportPrivatePem(old) }]);
    const after = KeyRing.fromPems([
      { kid: 'new', privateKeyPem: exportPrivatePem(fresh) },
      { kid: 'old', privateKeyPem: exportPrivatePem(old) },
    ]);
    const options = { issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 60 };
    const oldToken = new TokenIssuer({ keys: before, ...options }).sign({ userId: crypto.randomUUID(), tenant: null });
    const issuer = new TokenIssuer({ keys: after, ...options });
    expect(issuer.verify(oldToken)).not.toBeNull();
    expect(jwt.decode(issuer.sign({ userId: crypto.randomUUID(), tenant: null }), { complete: true })!.header.kid).toBe('new');
    expect(after.jwks().keys.map((key) => key.kid)).toEqual(['new', 'old']);
    // Once the old key is dropped from the ring, its tokens stop verifying.
    expect(new TokenIssuer({ keys: KeyRing.fromPems([{ kid: 'new', privateKeyPem: exportPrivatePem(fresh) }]), ...options }).verify(oldToken)).toBeNull();
  });

  test('refuses expired, foreign-key, wrong-audience and tampered tokens with 401 in the one error shape', async () => {
    const owner = await signUp(h.app, 'refuse');
    await setPlan(h, owner.tenantId);
    const options = { issuer: ISSUER, audience: AUDIENCE };
    const subject = { userId: owner.userId, tenant: { id: owner.tenantId!, role: 'owner' as const } };
    const expired = jwt.sign({ 'https://hasura.io/jwt/claims': {} }, h.deps.keys.current.privateKey, {
      algorithm: 'RS256',
      keyid: h.deps.keys.current.kid,
      subject: owner.userId,
      ...options,
      expiresIn: -10,
    });
    const foreign = new TokenIssuer({ keys: KeyRing.generate(), ...options, ttlSeconds: 60 }).sign(subject);
    const otherAudience = new TokenIssuer({ keys: h.deps.keys, issuer: ISSUER, audience: 'other', ttlSeconds: 60 }).sign(subject);
    const [head, payload, signature] = owner.accessToken.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, Record<string, unknown>>;
    claims['https://hasura.io/jwt/claims']!['x-hasura-default-role'] = 'owner';
    claims['https://hasura.io/jwt/claims']!['x-hasura-tenant-id'] = crypto.randomUUID();
    const tampered = `${head}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
    const hs256 = jwt.sign({ sub: owner.userId }, 'secret', { algorithm: 'HS256', keyid: h.deps.keys.current.kid, ...options });
    for (const token of [expired, foreign, otherAudience, tampered, hs256, 'not-a-jwt']) {
      const response = await request(h.app).get('/auth/me').set(bearer(token)).expect(401);
      expectError(response.body, 'unauthenticated');
    }
    expectError((await request(h.app).get('/auth/me').expect(401)).body, 'unauthenticated');
  });
});
