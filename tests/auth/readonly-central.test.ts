/**
 * A read-only token changes nothing on /auth: one rule where the routes are registered
 * refuses every non-GET route that takes a token, so a route added later without its own
 * check is covered too. The routes are read from Express itself (as openapi.test.ts does),
 * and both kinds of read-only token carry the owner role: nothing but read-only-ness is
 * left to refuse them.
 */
import { randomUUID } from 'node:crypto';
import type { Express } from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AUTH_OPERATIONS } from '../../services/auth/src/app.js';
import { bearer, decode, expectError, setPlan, signUp, startHarness, type Harness } from './harness.js';

let h: Harness;
const readOnlyTokens: Record<'read-only API key' | 'impersonation', string> = { 'read-only API key': '', impersonation: '' };

beforeAll(async () => {
  h = await startHarness();
  const [owner, staff] = await Promise.all([signUp(h.app, 'ro-owner'), signUp(h.app, 'ro-staff', false)]);
  await setPlan(h, owner.tenantId);

  const key = await request(h.app).post('/auth/api-keys').set(bearer(owner.accessToken)).send({ name: 'ro', role: 'owner', readOnly: true }).expect(201);
  const exchanged = await request(h.app).post('/auth/token').send({ apiKey: key.body.key }).expect(200);
  expect(exchanged.body).toMatchObject({ readOnly: true, tenant: { role: 'owner' } });
  readOnlyTokens['read-only API key'] = exchanged.body.accessToken as string;

  await h.admin.query('UPDATE users SET is_staff = true WHERE id = $1', [staff.userId]);
  const impersonation = await request(h.app)
    .post('/auth/staff/impersonate')
    .set(bearer(staff.accessToken))
    .send({ tenantId: owner.tenantId, userId: owner.userId, reason: 'read-only central rule test' })
    .expect(200);
  expect(impersonation.body).toMatchObject({ readOnly: true, role: 'owner' });
  expect(decode(impersonation.body.accessToken as string).act).toBeDefined();
  readOnlyTokens.impersonation = impersonation.body.accessToken as string;
});
afterAll(() => h.close());

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
}

/** Every (method, path) Express has registered, read from the router itself. */
function registeredRoutes(app: Express): { method: string; path: string }[] {
  const stack = (app as unknown as { router: { stack: Layer[] } }).router.stack;
  return stack
    .filter((layer) => layer.route)
    .flatMap((layer) =>
      Object.keys(layer.route!.methods)
        .filter((method) => method !== '_all')
        .map((method) => ({ method, path: layer.route!.path })),
    );
}

/** The registered non-GET routes that take a token ('token' or 'optional'). */
function writeRoutesTakingAToken(): { method: string; path: string }[] {
  return registeredRoutes(h.app).filter(({ method, path }) => {
    const operation = AUTH_OPERATIONS.find((candidate) => candidate.method === method && candidate.path === path);
    expect(operation, `${method.toUpperCase()} ${path} is registered but is no operation`).toBeDefined();
    return method !== 'get' && method !== 'head' && operation!.auth !== 'none';
  });
}

describe('read-only tokens are refused on every non-GET token route, before the route runs', () => {
  test('the walk covers the routes that change things', () => {
    const routes = writeRoutesTakingAToken().map(({ method, path }) => `${method.toUpperCase()} ${path}`);
    expect(routes.length).toBeGreaterThanOrEqual(12);
    for (const route of [
      'POST /auth/members',
      'PATCH /auth/members/:userId',
      'DELETE /auth/members/:userId',
      'POST /auth/api-keys',
      'POST /auth/switch-tenant',
      'POST /auth/invitations/accept',
      'POST /auth/verify-email/resend',
    ]) expect(routes, route).toContain(route);
  });

  test.each(Object.keys(readOnlyTokens) as (keyof typeof readOnlyTokens)[])('%s token: 403 forbidden everywhere, reads still work', async (kind) => {
    const token = readOnlyTokens[kind];
    // The token itself is valid: it reads.
    await request(h.app).get('/auth/me').set(bearer(token)).expect(200);

    for (const { method, path } of writeRoutesTakingAToken()) {
      const url = path.replace(/:[A-Za-z0-9_]+/g, randomUUID());
      // An empty body: a route that only checked after validating would answer 422.
      const answer = await request(h.app)[method as 'post' | 'patch' | 'delete' | 'put'](url).set(bearer(token)).send({});
      expect(answer.status, `${method.toUpperCase()} ${path}: ${JSON.stringify(answer.body)}`).toBe(403);
      expectError(answer.body, 'forbidden');
    }
  });
});
