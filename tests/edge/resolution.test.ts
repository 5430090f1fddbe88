import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BASE_DOMAIN, send, startEdgeHarness, tokenFor, type Echo, type EdgeHarness } from './harness.js';

let harness: EdgeHarness;
let acme: { id: string; slug: string };
let globex: { id: string; slug: string };

beforeAll(async () => {
  harness = await startEdgeHarness();
  acme = await harness.createTenant();
  globex = await harness.createTenant();
});
afterAll(() => harness?.stop());

const get = (path: string, options: Parameters<typeof send>[2] = {}) => send(harness.edge.url, path, options);
const echoed = (response: { json: unknown }) => response.json as Echo;

async function addDomain(tenantId: string, domain: string, verified: boolean) {
  await harness.admin.query('INSERT INTO tenant_domains (tenant_id, domain, verified_at) VALUES ($1, $2, $3)', [
    tenantId,
    domain,
    verified ? new Date() : null,
  ]);
}

describe('resolution sources', () => {
  test('X-Tenant-ID', async () => {
    const response = await get('/v1/graphql', { headers: { 'X-Tenant-ID': acme.id.toUpperCase() } });
    expect(response.status).toBe(200);
    expect(echoed(response).headers).toMatchObject({ 'x-hasura-tenant-id': acme.id, 'x-tenant-id': acme.id, 'x-tenant-slug': acme.slug });
  });

  test('X-Tenant-Slug', async () => {
    const response = await get('/storage/files', { headers: { 'X-Tenant-Slug': acme.slug } });
    expect(echoed(response).headers['x-tenant-id']).toBe(acme.id);
  });

  test('subdomain of the base domain, whatever its case, port or trailing dot', async () => {
    for (const host of [`${acme.slug}.${BASE_DOMAIN}`, `${acme.slug.toUpperCase()}.${BASE_DOMAIN.toUpperCase()}:8443`, `${acme.slug}.${BASE_DOMAIN}.`]) {
      const response = await get('/v1/graphql', { host });
      expect(response.status, host).toBe(200);
      expect(echoed(response).headers['x-tenant-id'], host).toBe(acme.id);
    }
  });

  test('a verified custom domain, also in punycode', async () => {
    const suffix = randomBytes(4).toString('hex');
    await addDomain(acme.id, `app.acme-${suffix}.test`, true);
    await addDomain(globex.id, `shop-${suffix}.xn--bcher-kva.test`, true);
    expect(echoed(await get('/v1/graphql', { host: `APP.acme-${suffix}.test.` })).headers['x-tenant-id']).toBe(acme.id);
    expect(echoed(await get('/v1/graphql', { host: `shop-${suffix}.XN--BCHER-KVA.test:443` })).headers['x-tenant-id']).toBe(globex.id);
  });

  test('an unverified domain names no tenant', async () => {
    const domain = `pending-${randomBytes(4).toString('hex')}.test`;
    await addDomain(acme.id, domain, false);
    const response = await get('/v1/graphql', { host: domain });
    expect(response.status).toBe(400);
    expect(response.json).toEqual({ errors: [{ message: expect.any(String), extensions: { code: 'tenant_required' } }] });
  });

  test("the token's tenant claim when nothing else names one", async () => {
    const response = await get('/v1/graphql', { headers: { Authorization: `Bearer ${tokenFor(globex.id)}` } });
    expect(echoed(response).headers['x-tenant-id']).toBe(globex.id);
  });

  test('reserved labels, deeper names and the bare base domain name no tenant', async () => {
    for (const host of [`www.${BASE_DOMAIN}`, `api.${BASE_DOMAIN}`, `${acme.slug}.eu.${BASE_DOMAIN}`, BASE_DOMAIN, '127.0.0.1', 'localhost']) {
      const response = await get('/storage/x', { host });
      expect(response.status, host).toBe(400);
      expect(response.json, host).toEqual({ error: { code: 'tenant_required', message: expect.any(String) } });
    }
  });
});

describe('priority', () => {
  test('X-Tenant-ID beats X-Tenant-Slug beats the host', async () => {
    const both = await get('/v1/graphql', { host: `${globex.slug}.${BASE_DOMAIN}`, headers: { 'X-Tenant-ID': acme.id, 'X-Tenant-Slug': globex.slug } });
    expect(echoed(both).headers['x-tenant-id']).toBe(acme.id);
    const slugOverHost = await get('/v1/graphql', { host: `${globex.slug}.${BASE_DOMAIN}`, headers: { 'X-Tenant-Slug': acme.slug } });
    expect(echoed(slugOverHost).headers['x-tenant-id']).toBe(acme.id);
  });

  test('the host beats nothing else but the token, and must match it', async () => {
    const mismatch = await get('/v1/graphql', { host: `${acme.slug}.${BASE_DOMAIN}`, headers: { Authorization: `Bearer ${tokenFor(globex.id)}` } });
    expect(mismatch.status).toBe(403);
    expect(mismatch.json).toEqual({ errors: [{ message: expect.any(String), extensions: { code: 'tenant_mismatch' } }] });
    const match = await get('/v1/graphql', { host: `${acme.slug}.${BASE_DOMAIN}`, headers: { Authorization: `Bearer ${tokenFor(acme.id)}` } });
    expect(match.status).toBe(200);
  });

  test('a token of another tenant is refused with a header too, on every route', async () => {
    const response = await get('/storage/files', { headers: { 'X-Tenant-Slug': acme.slug, Authorization: `Bearer ${tokenFor(globex.id)}` } });
    expect(response.status).toBe(403);
    expect(response.json).toEqual({ error: { code: 'tenant_mismatch', message: expect.any(String) } });
  });
});

describe('refusals', () => {
  test('suspended, deleted and unknown tenants', async () => {
    const suspended = await harness.createTenant({ status: 'suspended' });
    const deleted = await harness.createTenant({ status: 'deleted' });
    expect((await get('/v1/graphql', { headers: { 'X-Tenant-Slug': suspended.slug } })).json.errors[0].extensions.code).toBe('tenant_suspended');
    expect((await get('/storage/x', { headers: { 'X-Tenant-Slug': suspended.slug } })).status).toBe(403);
    const gone = await get('/storage/x', { headers: { 'X-Tenant-ID': deleted.id } });
    expect([gone.status, gone.json.error.code]).toEqual([404, 'tenant_not_found']);
    const unknown = await get('/storage/x', { headers: { 'X-Tenant-ID': randomUUID() } });
    expect([unknown.status, unknown.json.error.code]).toEqual([404, 'tenant_not_found']);
    const unknownHost = await get('/storage/x', { host: `nobody-${randomBytes(3).toString('hex')}.${BASE_DOMAIN}` });
    expect([unknownHost.status, unknownHost.json.error.code]).toEqual([404, 'tenant_not_found']);
  });

  test('malformed and repeated tenant headers', async () => {
    const malformed: Array<Record<string, string | string[]>> = [
      { 'X-Tenant-ID': 'not-a-uuid' },
      { 'X-Tenant-Slug': 'Bad_Slug' },
      { 'X-Tenant-Slug': 'a'.repeat(64) },
      { 'X-Tenant-Slug': [acme.slug, globex.slug] },
    ];
    for (const headers of malformed) {
      const response = await get('/storage/x', { headers });
      expect(response.status, JSON.stringify(headers)).toBe(400);
      expect(response.json.error.code).toBe('invalid_tenant_header');
    }
  });

  test('a bearer token that is not a JWT', async () => {
    const response = await get('/storage/x', { headers: { 'X-Tenant-Slug': acme.slug, Authorization: 'Bearer not.a-jwt' } });
    expect([response.status, response.json.error.code]).toEqual([401, 'invalid_token']);
  });

  test('oversized headers get the shared error shape', async () => {
    const response = await get('/storage/x', { headers: { 'X-Tenant-Slug': acme.slug, 'X-Padding': 'x'.repeat(20_000) } });
    expect(response.status).toBe(400);
    expect(response.json).toEqual({ error: { code: 'bad_request', message: expect.any(String) } });
  });

  test('routes: no tenant needed on /auth, unknown paths are 404', async () => {
    expect((await get('/auth/login', { method: 'POST', body: '{}' })).status).toBe(200);
    const missing = await get('/nothing-here', { headers: { 'X-Tenant-Slug': acme.slug } });
    expect([missing.status, missing.json.error.code]).toEqual([404, 'not_found']);
    expect((await get('/healthz')).json).toEqual({ status: 'ok' });
  });
});

describe('headers', () => {
  const spoofed = {
    'X-Hasura-Role': 'admin',
    'x-HASURA-tenant-id': '00000000-0000-4000-8000-000000000000',
    'X-Hasura-User-Id': '00000000-0000-4000-8000-000000000001',
    'X-Hasura-Admin-Secret': 'guess',
    'X-Request-Id': 'client-chosen',
  };

  test('client X-Hasura-* and edge headers never reach an upstream, on any route', async () => {
    const routes: Array<[string, Record<string, string>, string | undefined]> = [
      ['/v1/graphql', { 'X-Tenant-Slug': acme.slug }, acme.id],
      ['/auth/me', {}, undefined],
      ['/billing/webhooks/stripe', { 'X-Tenant-Slug': acme.slug }, undefined],
      ['/storage/x', { 'X-Tenant-ID': acme.id }, acme.id],
    ];
    for (const [path, extra, tenant] of routes) {
      const response = await get(path, { method: 'POST', headers: { ...spoofed, ...extra } });
      const seen = echoed(response).headers;
      expect(response.status, path).toBe(200);
      expect(Object.keys(seen).filter((name) => name.startsWith('x-hasura-') && name !== 'x-hasura-tenant-id'), path).toEqual([]);
      expect(seen['x-hasura-tenant-id'], path).toBe(tenant);
      expect(seen['x-tenant-id'], path).toBe(tenant);
      expect(seen['x-tenant-slug'], path).toBe(tenant && acme.slug);
      expect(seen['x-request-id'], path).toMatch(/^[0-9a-f]{32}$/);
      expect(response.headers['x-request-id']).toBe(seen['x-request-id']);
    }
  });

  test('a spoofed header hidden behind a hundred others is still dropped', async () => {
    const padding = Object.fromEntries(Array.from({ length: 150 }, (_, index) => [`X-Pad-${index}`, 'x']));
    const response = await get('/v1/graphql', { headers: { ...padding, 'X-Hasura-Role': 'admin', 'X-Tenant-Slug': acme.slug } });
    expect(echoed(response).headers['x-hasura-role']).toBeUndefined();
  });

  test('the Stripe webhook body passes byte for byte', async () => {
    const body = Buffer.concat([Buffer.from('{"id":"evt_1","data":"caf\u00e9"}\r\n'), randomBytes(64)]);
    const response = await get('/billing/webhooks/stripe', { method: 'POST', body, headers: { 'Stripe-Signature': 't=1,v1=abc' } });
    expect(Buffer.from(echoed(response).body, 'base64').equals(body)).toBe(true);
    expect(echoed(response).headers['stripe-signature']).toBe('t=1,v1=abc');
  });

  test('WebSocket upgrades reach the GraphQL upstream with the tenant', async () => {
    const port = Number(new URL(harness.edge.url).port);
    const head = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(
          `GET /v1/graphql HTTP/1.1\r\nHost: ${acme.slug}.${BASE_DOMAIN}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n',
        );
      });
      let received = '';
      socket.on('data', (chunk) => {
        received += chunk.toString();
        if (received.includes('\r\n\r\n')) {
          socket.destroy();
          resolve(received);
        }
      });
      socket.on('error', reject);
    });
    expect(head).toMatch(/^HTTP\/1\.1 101/);
    expect(head.toLowerCase()).toContain(`x-seen-tenant: ${acme.id}`);
  });
});

describe('access log', () => {
  test('one JSON line per request with request id, tenant, route, status and latency', async () => {
    const response = await get('/v1/graphql', { headers: { 'X-Tenant-Slug': acme.slug } });
    const requestId = response.headers['x-request-id'];
    await new Promise((resolve) => setTimeout(resolve, 100));
    const lines = (await readFile(harness.edge.accessLog, 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
    const entry = lines.find((line) => line.request_id === requestId);
    expect(entry).toMatchObject({ tenant_id: acme.id, route: 'graphql', status: 200, method: 'GET' });
    expect(typeof entry.latency_s).toBe('number');
  });

  test('nginx logged no [error] for all of the above', async () => {
    const log = await readFile(harness.edge.errorLog, 'utf8');
    expect(log.split('\n').filter((line) => line.includes('[error]') || line.includes('[crit]'))).toEqual([]);
  });
});
