import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { EDGE_SETTINGS_FILE_NAME } from '../../scripts/edge/render.js';
import { publishEdgePurge } from '../../services/shared/src/edge-purge.js';
import { services } from '../helpers/database.js';
import { send, startEdgeHarness, type EdgeHarness } from './harness.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` passes or `ms` runs out; returns how long it took. */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    if (await check()) return Date.now() - started;
    await sleep(25);
  }
  throw new Error(`not within ${ms} ms`);
}

describe('cache, purge and rate limit', () => {
  let harness: EdgeHarness;
  beforeAll(async () => {
    harness = await startEdgeHarness();
  });
  afterAll(() => harness?.stop());

  const status = (slug: string) => send(harness.edge.url, '/storage/x', { headers: { 'X-Tenant-Slug': slug } }).then((r) => r.status);

  test('a warm cache keeps serving while the resolver is down; a cold name gets 503, not a tenant', async () => {
    const tenant = await harness.createTenant();
    const other = await harness.createTenant();
    expect(await status(tenant.slug)).toBe(200);
    await harness.stopResolver();
    try {
      expect(await status(tenant.slug)).toBe(200);
      const cold = await send(harness.edge.url, '/v1/graphql', { headers: { 'X-Tenant-Slug': other.slug } });
      expect(cold.status).toBe(503);
      expect(cold.json.errors[0].extensions.code).toBe('resolver_unavailable');
    } finally {
      await harness.startResolver();
    }
  });

  test('answers are cached: a change in the database shows only after a purge', async () => {
    const tenant = await harness.createTenant();
    expect(await status(tenant.slug)).toBe(200);
    await suspend(harness, tenant.id);
    expect(await status(tenant.slug)).toBe(200);
    const purge = await send(harness.edge.url, '/_edge/purge', { method: 'POST', body: JSON.stringify({ tenant_id: tenant.id }) });
    expect(purge.status).toBe(200);
    expect(await status(tenant.slug)).toBe(403);
  });

  test('the purge drops every key of the tenant: id, slug and domain', async () => {
    const tenant = await harness.createTenant();
    const domain = `purge-${randomBytes(4).toString('hex')}.test`;
    await harness.admin.query('INSERT INTO tenant_domains (tenant_id, domain, verified_at) VALUES ($1, $2, now())', [tenant.id, domain]);
    const viaId = () => send(harness.edge.url, '/storage/x', { headers: { 'X-Tenant-ID': tenant.id } }).then((r) => r.status);
    const viaDomain = () => send(harness.edge.url, '/storage/x', { host: domain }).then((r) => r.status);
    expect([await viaId(), await viaDomain(), await status(tenant.slug)]).toEqual([200, 200, 200]);
    await suspend(harness, tenant.id);
    await send(harness.edge.url, '/_edge/purge', { method: 'POST', body: JSON.stringify({ tenant_id: tenant.id }) });
    expect([await viaId(), await viaDomain(), await status(tenant.slug)]).toEqual([403, 403, 403]);
  });

  test('negative answers are cached briefly, and a purge by slug ends them at once', async () => {
    const slug = `late-${randomBytes(5).toString('hex')}`;
    expect(await status(slug)).toBe(404);
    await harness.admin.query("INSERT INTO tenants (slug, name) VALUES ($1, 'Late')", [slug]);
    expect(await status(slug)).toBe(404);
    await send(harness.edge.url, '/_edge/purge', { method: 'POST', body: JSON.stringify({ slug }) });
    expect(await status(slug)).toBe(200);

    const expiring = `later-${randomBytes(5).toString('hex')}`;
    expect(await status(expiring)).toBe(404);
    await harness.admin.query("INSERT INTO tenants (slug, name) VALUES ($1, 'Later')", [expiring]);
    // EDGE_NEGATIVE_CACHE_TTL_SECONDS is 1 in the harness.
    await within(2_500, async () => (await status(expiring)) === 200);
  });

  test('a purge published on the Redis stream reaches the edge within a second', async () => {
    const tenant = await harness.createTenant();
    expect(await status(tenant.slug)).toBe(200);
    await suspend(harness, tenant.id);
    const redis = new Redis(services().endpoints.redisUrl);
    try {
      const settingsFile = path.join(path.dirname(harness.edge.configFile), EDGE_SETTINGS_FILE_NAME);
      const stream = (JSON.parse(readFileSync(settingsFile, 'utf8')) as { purge_stream: string }).purge_stream;
      await publishEdgePurge(redis, { tenantId: tenant.id }, stream);
      const took = await within(1_000, async () => (await status(tenant.slug)) === 403);
      expect(took).toBeLessThan(1_000);
    } finally {
      redis.disconnect();
    }
  });

  test('malformed purges are refused', async () => {
    for (const body of ['not json', '{}', '{"tenant_id":"nope"}']) {
      const response = await send(harness.edge.url, '/_edge/purge', { method: 'POST', body });
      expect(response.status, body).toBe(400);
      expect(response.json.error.code).toBe('bad_request');
    }
    expect((await send(harness.edge.url, '/_edge/purge')).status).toBe(405);
  });

  test("the tenant's plan limits requests per second: 429 with Retry-After", async () => {
    const plan = `slow${randomBytes(4).toString('hex')}`;
    await harness.admin.query("INSERT INTO plans (id, name, rate_limit_rps, is_public) VALUES ($1, 'Slow', 3, false)", [plan]);
    const tenant = await harness.createTenant({ plan });
    const neighbour = await harness.createTenant();
    await status(tenant.slug); // warm the cache, so the burst below is about the limiter alone
    const burst = await Promise.all(Array.from({ length: 12 }, () => send(harness.edge.url, '/storage/x', { headers: { 'X-Tenant-Slug': tenant.slug } })));
    const limited = burst.filter((response) => response.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(12 - 2 * 3);
    expect(limited[0]!.headers['retry-after']).toBe('1');
    expect(limited[0]!.json.error.code).toBe('rate_limited');
    expect(await status(neighbour.slug)).toBe(200);
    await within(2_500, async () => (await status(tenant.slug)) === 200);
  });

  test('a higher limit counted in per-worker batches still holds across both workers within 5%', async () => {
    const limit = 200; // two workers: batches of 5, so at most 2 × 4 requests go uncounted
    const plan = `batch${randomBytes(4).toString('hex')}`;
    await harness.admin.query("INSERT INTO plans (id, name, rate_limit_rps, is_public) VALUES ($1, 'Batched', $2, false)", [plan, limit]);
    const tenant = await harness.createTenant({ plan });
    await status(tenant.slug);
    // The limit is per second of the edge's clock: start just after a second begins, and
    // count a burst against one second's limit when it ended within that second (on a
    // machine too slow for that, against two seconds' limits).
    for (let attempt = 0; ; attempt += 1) {
      while (Date.now() % 1000 > 20) await sleep(1);
      const second = Math.floor(Date.now() / 1000);
      const burst = await Promise.all(Array.from({ length: 2 * limit }, () => status(tenant.slug)));
      const seconds = Math.floor(Date.now() / 1000) === second ? 1 : 2;
      if (seconds === 2 && attempt < 9) continue;
      const allowed = burst.filter((code) => code === 200).length;
      expect(burst.filter((code) => code !== 200 && code !== 429)).toEqual([]);
      expect(allowed).toBeGreaterThanOrEqual(limit);
      expect(allowed).toBeLessThanOrEqual(limit * 1.05 * seconds);
      return;
    }
  });
});

describe('stale answers and a locked-down purge endpoint', () => {
  let harness: EdgeHarness;
  beforeAll(async () => {
    harness = await startEdgeHarness({ EDGE_CACHE_TTL_SECONDS: '0.5', EDGE_STALE_TTL_SECONDS: '60', EDGE_PURGE_TRUST_LOOPBACK: 'false' });
  });
  afterAll(() => harness?.stop());

  test('past its freshness an answer is served stale while the resolver is down', async () => {
    const tenant = await harness.createTenant();
    const request = () => send(harness.edge.url, '/storage/x', { headers: { 'X-Tenant-Slug': tenant.slug } });
    expect((await request()).status).toBe(200);
    await harness.stopResolver();
    try {
      await sleep(700);
      expect((await request()).status).toBe(200);
    } finally {
      await harness.startResolver();
    }
    await suspend(harness, tenant.id);
    await sleep(700);
    expect((await request()).status).toBe(403);
  });

  test('without loopback trust the purge needs the shared secret', async () => {
    const body = JSON.stringify({ slug: 'anything' });
    expect((await send(harness.edge.url, '/_edge/purge', { method: 'POST', body })).status).toBe(403);
    expect((await send(harness.edge.url, '/_edge/purge', { method: 'POST', body, headers: { 'X-Edge-Secret': 'wrong-secret-wrong' } })).status).toBe(403);
    expect((await send(harness.edge.url, '/_edge/purge', { method: 'POST', body, headers: { 'X-Edge-Secret': harness.purgeSecret } })).status).toBe(200);
  });
});

function suspend(harness: EdgeHarness, id: string) {
  return harness.admin.query("UPDATE tenants SET status = 'suspended' WHERE id = $1", [id]);
}

describe('the per-worker answer tables stay within EDGE_WORKER_CACHE_ITEMS', () => {
  let harness: EdgeHarness;
  beforeAll(async () => {
    harness = await startEdgeHarness({ EDGE_WORKER_CACHE_ITEMS: '100' });
  });
  afterAll(() => harness?.stop());

  test('past the bound a table starts over, every name still resolves, and purges still apply', async () => {
    const tenants = await Promise.all(Array.from({ length: 250 }, () => harness.createTenant()));
    const statusOf = (slug: string) => send(harness.edge.url, '/storage/x', { headers: { 'X-Tenant-Slug': slug } }).then((r) => r.status);
    for (let pass = 0; pass < 2; pass += 1) {
      const codes = await Promise.all(tenants.map((tenant) => statusOf(tenant.slug)));
      expect(codes.filter((code) => code !== 200)).toEqual([]);
    }
    // Two workers, 250 names each way: each worker has seen more than 100 slugs.
    for (let probe = 0; probe < 6; probe += 1) {
      const stats = await send(harness.edge.url, '/_edge/stats');
      expect(stats.json.worker_cache.slug).toBeGreaterThan(0);
      expect(stats.json.worker_cache.slug).toBeLessThanOrEqual(100);
      expect(stats.json.worker_cache.id).toBeLessThanOrEqual(100);
    }
    const first = tenants[0]!;
    await suspend(harness, first.id);
    await send(harness.edge.url, '/_edge/purge', { method: 'POST', body: JSON.stringify({ tenant_id: first.id }) });
    expect(await statusOf(first.slug)).toBe(403);
  });
});
