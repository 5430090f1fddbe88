import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildResolverApp } from '../../services/resolver/src/app.js';
import { poolAs } from '../helpers/database.js';

const secret = randomBytes(24).toString('base64url');
const pool = poolAs('app_service', 2);
const admin = poolAs('platform_admin', 1);
let server: Server;
let base: string;

beforeAll(async () => {
  const app = buildResolverApp({ pool, secret, logger: pino({ level: 'silent' }) });
  server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await Promise.all([pool.end(), admin.end()]);
});

const resolve = (query: string, headers: Record<string, string> = { 'X-Resolver-Secret': secret }) =>
  fetch(`${base}/internal/resolve?${query}`, { headers }).then(async (response) => ({
    status: response.status,
    body: (await response.json()) as { tenant?: unknown; error?: { code: string; message: string } },
  }));

describe('resolver service', () => {
  test('answers by id, slug and verified domain (normalised), with the plan limits', async () => {
    const slug = `res-${randomBytes(4).toString('hex')}`;
    const domain = `${slug}.xn--bcher-kva.test`;
    const { rows } = await admin.query<{ id: string }>("INSERT INTO tenants (slug, name, plan_id) VALUES ($1, 'R', 'starter') RETURNING id", [slug]);
    const id = rows[0]!.id;
    await admin.query('INSERT INTO tenant_domains (tenant_id, domain, verified_at) VALUES ($1, $2, now())', [id, domain]);
    const expected = { id, slug, status: 'active', plan: 'starter', rate_limit_rps: 20, max_api_requests_month: 100000, suspension_reason: null, custom_domains: true, api_requests_month_used: 0, usage_month: new Date().toISOString().slice(0, 7) };
    expect(await resolve(`by=id&value=${id}`)).toEqual({ status: 200, body: { tenant: expected } });
    expect(await resolve(`by=slug&value=${slug}`)).toEqual({ status: 200, body: { tenant: expected } });
    expect(await resolve(`by=domain&value=${encodeURIComponent(`${slug.toUpperCase()}.bücher.test.`)}`)).toEqual({ status: 200, body: { tenant: expected } });
  });

  test('an unverified domain and an unknown slug are 404', async () => {
    const slug = `res-${randomBytes(4).toString('hex')}`;
    const { rows } = await admin.query<{ id: string }>("INSERT INTO tenants (slug, name, plan_id) VALUES ($1, 'R', 'starter') RETURNING id", [slug]);
    await admin.query('INSERT INTO tenant_domains (tenant_id, domain) VALUES ($1, $2)', [rows[0]!.id, `${slug}.test`]);
    expect((await resolve(`by=domain&value=${slug}.test`)).status).toBe(404);
    expect(await resolve('by=slug&value=nobody-here')).toEqual({ status: 404, body: { error: { code: 'tenant_not_found', message: 'no such tenant' } } });
  });

  test("says why a tenant is suspended, and whether its plan (with the tenant's overrides) includes custom domains", async () => {
    const slug = `res-${randomBytes(4).toString('hex')}`;
    const { rows } = await admin.query<{ id: string }>("INSERT INTO tenants (slug, name, plan_id) VALUES ($1, 'R', 'starter') RETURNING id", [slug]);
    const id = rows[0]!.id;
    const domain = `${slug}.test`;
    await admin.query('INSERT INTO tenant_domains (tenant_id, domain, verified_at) VALUES ($1, $2, now())', [id, domain]);
    await admin.query('SELECT app.billing_set_plan($1, $2, $3)', [id, 'free', 'canceled']);
    await admin.query('SELECT app.billing_set_suspended($1, true, $2)', [id, 'grace over']);
    // The domain still names its tenant: the edge refuses it, and says why.
    expect(await resolve(`by=domain&value=${domain}`)).toEqual({
      status: 200,
      body: { tenant: expect.objectContaining({ id, status: 'suspended', suspension_reason: 'billing', plan: 'free', custom_domains: false }) },
    });
    await admin.query(`UPDATE tenants SET feature_overrides = '{"custom_domains": true}' WHERE id = $1`, [id]);
    expect((await resolve(`by=id&value=${id}`)).body.tenant).toMatchObject({ custom_domains: true });
  });

  test('refuses a missing or wrong secret, and malformed queries', async () => {
    expect(await resolve('by=slug&value=acme', {})).toEqual({ status: 401, body: { error: { code: 'unauthenticated', message: 'resolver secret missing or wrong' } } });
    expect((await resolve('by=slug&value=acme', { 'X-Resolver-Secret': 'x'.repeat(secret.length) })).status).toBe(401);
    for (const query of ['by=id&value=nope', 'by=slug&value=Not_A_Slug', 'by=domain&value=..', 'by=name&value=acme', '']) {
      const answer = await resolve(query);
      expect(answer.status, query).toBe(422);
      expect(answer.body.error?.code).toBe('validation_failed');
    }
  });

  test('a database failure is 503, never "not found"', async () => {
    const broken = new pg.Pool({ connectionString: 'postgresql://nobody:wrong@127.0.0.1:1/none', connectionTimeoutMillis: 500 });
    const app = buildResolverApp({ pool: broken, secret, logger: pino({ level: 'silent' }) });
    const brokenServer = await new Promise<Server>((resolve) => {
      const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
    });
    try {
      const port = (brokenServer.address() as AddressInfo).port;
      const response = await fetch(`http://127.0.0.1:${port}/internal/resolve?by=slug&value=acme`, { headers: { 'X-Resolver-Secret': secret } });
      expect(response.status).toBe(503);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(503);
    } finally {
      await new Promise((resolve) => brokenServer.close(resolve));
      await broken.end();
    }
  });
});
