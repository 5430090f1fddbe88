import type { Express } from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ERRORS } from '../../services/shared/src/errors/catalog.js';
import { startHarness, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
}

/** Every (method, path) Express has registered, read from the router itself. */
function registeredRoutes(app: Express): string[] {
  const stack = (app as unknown as { router: { stack: Layer[] } }).router.stack;
  return stack
    .filter((layer) => layer.route)
    .flatMap((layer) =>
      Object.keys(layer.route!.methods)
        .filter((method) => method !== '_all')
        .map((method) => `${method.toUpperCase()} ${layer.route!.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`),
    )
    .sort();
}

describe('OpenAPI 3.1 document', () => {
  test('is served and describes exactly the routes Express has registered', async () => {
    const answer = await request(h.app).get('/auth/openapi.json').expect(200);
    const document = answer.body as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(document.openapi).toBe('3.1.0');
    const documented = Object.entries(document.paths)
      .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    const registered = registeredRoutes(h.app);
    expect(registered.length).toBeGreaterThan(25);
    expect(documented).toEqual(registered);
    // The list of routes is all there.
    for (const route of [
      'POST /auth/signup', 'POST /auth/login', 'POST /auth/refresh', 'POST /auth/logout', 'GET /auth/me', 'GET /auth/tenants',
      'POST /auth/switch-tenant', 'POST /auth/token', 'GET /auth/.well-known/jwks.json', 'POST /auth/verify-email', 'POST /auth/password-reset',
      'POST /auth/password-reset/confirm', 'GET /auth/members', 'POST /auth/invitations/accept', 'GET /auth/api-keys',
    ]) expect(registered, route).toContain(route);
  });

  test('request bodies and parameters come from the zod schemas', async () => {
    const document = (await request(h.app).get('/auth/openapi.json').expect(200)).body as {
      paths: Record<string, Record<string, { requestBody?: { content: { 'application/json': { schema: { properties: Record<string, unknown>; required?: string[] } } } }; parameters?: { name: string; in: string }[] }>>;
    };
    const signup = document.paths['/auth/signup']!.post!.requestBody!.content['application/json'].schema;
    expect(Object.keys(signup.properties).sort()).toEqual(['displayName', 'email', 'password', 'tenant']);
    expect(signup.required?.sort()).toEqual(['email', 'password']);
    expect(document.paths['/auth/members/{userId}']!.patch!.parameters).toEqual([expect.objectContaining({ name: 'userId', in: 'path' })]);
  });

  test('unknown routes are 404 in the one error shape; the error catalog stays within the statuses the API uses', async () => {
    const answer = await request(h.app).get('/auth/nope').expect(404);
    expect(answer.body).toEqual({ error: { code: 'not_found', message: 'no such route' } });
    const statuses = new Set(Object.values(ERRORS).map(([status]) => status));
    // One catalog for the services and the edge: nginx's own refusals (405, 411, 412, 413, 416), 500, and the
    // payment provider refusing a request (502) are in it too.
    for (const status of statuses) expect([400, 401, 403, 404, 405, 409, 410, 411, 412, 413, 416, 422, 429, 500, 501, 502, 503]).toContain(status);
    await request(h.app).get('/healthz').expect(200);
  });
});
