import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { pino } from 'pino';
import { ingestBatch } from '../../services/billing/src/usage/ingest.js';
import { publishEdgePurge } from '../../services/shared/src/edge-purge.js';
import { poolAs, services } from '../helpers/database.js';
import { send, startEdgeHarness, tokenFor, type EdgeHarness, type Response } from './harness.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `total` calls of `task` with `concurrency` of them in flight at once. */
async function concurrently<T>(total: number, concurrency: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const index = next++;
        results[index] = await task(index);
      }
    }),
  );
  return results;
}

/** The sum of `count` in the usage stream's entries for a tenant. */
async function streamedCount(redis: Redis, stream: string, tenantId: string): Promise<number> {
  const entries = await redis.xrange(stream, '-', '+');
  let total = 0;
  for (const [, fields] of entries) {
    const entry: Record<string, string> = {};
    for (let index = 0; index < fields.length; index += 2) entry[fields[index]!] = fields[index + 1]!;
    if (entry.tenant === tenantId) total += Number(entry.count);
  }
  return total;
}

async function setQuota(harness: EdgeHarness, tenantId: string, quota: number | null): Promise<void> {
  await harness.admin.query('UPDATE tenants SET max_api_requests_month = $2 WHERE id = $1', [tenantId, quota]);
}

describe('monthly API quota across edges', () => {
  let harness: EdgeHarness;
  let redis: Redis;
  const usageStream = `usage:api:test:${randomBytes(4).toString('hex')}`;
  let edgeUrls: string[];
  // No per-second limit in the way: these tests are about the month.
  const plan = `quota-${randomBytes(4).toString('hex')}`;
  beforeAll(async () => {
    harness = await startEdgeHarness({ EDGE_USAGE_STREAM: usageStream });
    await harness.admin.query("INSERT INTO plans (id, name, rate_limit_rps, is_public) VALUES ($1, 'Quota test', 100000, false)", [plan]);
    const second = await harness.startAnotherEdge();
    edgeUrls = [harness.edge.url, second.url];
    redis = new Redis(services().endpoints.redisUrl);
  });
  afterAll(async () => {
    await redis?.del(usageStream);
    redis?.disconnect();
    await harness?.stop();
  });

  const call = (url: string, token: string, path = '/v1/graphql'): Promise<Response> =>
    send(url, path, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: '{}' });

  test('2 edges × 2 workers, quota 500, 40 clients, 2,000 requests: exactly 500 accepted, 1,500 quota_exceeded, 500 in the usage stream and in tenant_usage', async () => {
    const tenant = await harness.createTenant({ plan });
    await setQuota(harness, tenant.id, 500);
    const token = tokenFor(tenant.id);
    const responses = await concurrently(2000, 40, (index) => call(edgeUrls[index % 2]!, token));
    const statuses = new Map<number, number>();
    for (const response of responses) statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    expect(Object.fromEntries(statuses)).toEqual({ 200: 500, 429: 1500 });
    const refused = responses.find((response) => response.status === 429)!;
    expect(refused.json.errors[0].extensions.code).toBe('quota_exceeded');
    expect(refused.headers['x-quota-limit']).toBe('500');
    expect(refused.headers['x-quota-remaining']).toBe('0');
    const accepted = responses.find((response) => response.status === 200)!;
    expect(accepted.headers['x-quota-limit']).toBe('500');
    expect(Number(accepted.headers['x-quota-remaining'])).toBeLessThan(500);
    const now = new Date();
    const monthEnd = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) / 1000;
    expect(Number(accepted.headers['x-quota-reset'])).toBe(monthEnd);
    const retryAfter = Number(refused.headers['retry-after']);
    expect(Math.abs(retryAfter - (monthEnd - Date.now() / 1000))).toBeLessThan(30);
    // Each worker appends its counts every second.
    let streamed = 0;
    for (let attempt = 0; attempt < 40 && streamed < 500; attempt++) {
      await sleep(250);
      streamed = await streamedCount(redis, usageStream, tenant.id);
    }
    await sleep(1500);
    expect(await streamedCount(redis, usageStream, tenant.id)).toBe(500);

    // The billing process's usage worker moves the stream into tenant_usage.
    const pool = poolAs('app_service', 2);
    try {
      for (;;) {
        const result = await ingestBatch({ pool, redis, logger: pino({ level: 'silent' }), stream: usageStream, batchSize: 500 });
        if (result.exhausted) break;
      }
      const { rows } = await harness.admin.query<{ used: string }>(
        "SELECT coalesce(sum(quantity), 0) AS used FROM tenant_usage WHERE tenant_id = $1 AND metric = 'api.requests'",
        [tenant.id],
      );
      expect(Number(rows[0]!.used)).toBe(500);
    } finally {
      await pool.end();
    }
  });

  test('requests without a token and tenants without a quota are not limited; /v1/graphql refuses in GraphQL shape, /storage in the services shape', async () => {
    const limited = await harness.createTenant({ plan });
    await setQuota(harness, limited.id, 2);
    const token = tokenFor(limited.id);
    const first = await call(harness.edge.url, token, '/storage/x');
    expect(first.status).toBe(200);
    expect(first.headers['x-quota-limit']).toBe('2');
    await call(harness.edge.url, token, '/storage/x');
    await call(edgeUrls[1]!, token, '/storage/x');
    const over = await call(harness.edge.url, token, '/storage/x');
    expect(over.status).toBe(429);
    expect(over.json.error.code).toBe('quota_exceeded');
    // Anonymous: not counted, so not refused by the quota either.
    const anonymous = await send(harness.edge.url, '/storage/x', { headers: { 'X-Tenant-Slug': limited.slug } });
    expect(anonymous.status).toBe(200);
    expect(anonymous.headers['x-quota-limit']).toBeUndefined();

    const unlimited = await harness.createTenant({ plan });
    await setQuota(harness, unlimited.id, null);
    const free = await call(harness.edge.url, tokenFor(unlimited.id));
    expect(free.status).toBe(200);
    expect(free.headers['x-quota-limit']).toBeUndefined();
  });

  // The second is the purge poll (250 ms) and a resolver round trip; a loaded machine's
  // stall past it is tried again.
  test('a plan change applies within a second: raising the limit lets requests through, lowering it refuses them', { retry: 2 }, async () => {
    const tenant = await harness.createTenant({ plan });
    await setQuota(harness, tenant.id, 20);
    const token = tokenFor(tenant.id);
    const first = await concurrently(60, 10, (index) => call(edgeUrls[index % 2]!, token));
    expect(first.filter((response) => response.status === 200)).toHaveLength(20);

    await setQuota(harness, tenant.id, 120);
    await publishEdgePurge(redis, { tenantId: tenant.id }, harness.purgeStream);
    await sleep(1000);
    const raised = await concurrently(200, 10, (index) => call(edgeUrls[index % 2]!, token));
    expect(raised.filter((response) => response.status === 200)).toHaveLength(100);
    expect(raised.filter((response) => response.status === 429)).toHaveLength(100);

    await setQuota(harness, tenant.id, 50);
    await publishEdgePurge(redis, { tenantId: tenant.id }, harness.purgeStream);
    await sleep(1000);
    const lowered = await concurrently(40, 10, (index) => call(edgeUrls[index % 2]!, token));
    expect(lowered.every((response) => response.status === 429)).toBe(true);
    expect(lowered[0]!.headers['x-quota-limit']).toBe('50');
  });

  test('a WebSocket subscription counts once, when it connects', async () => {
    const tenant = await harness.createTenant({ plan });
    await setQuota(harness, tenant.id, 2);
    const token = tokenFor(tenant.id);
    const port = Number(new URL(harness.edge.url).port);
    const upgrade = () =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => {
          socket.write(
            `GET /v1/graphql HTTP/1.1\r\nHost: example-saas.test\r\nAuthorization: Bearer ${token}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
              'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n',
          );
        });
        let received = '';
        socket.on('data', (chunk) => {
          received += chunk.toString();
          if (received.includes('\r\n\r\n')) {
            socket.destroy();
            resolve(received.split('\r\n')[0]!);
          }
        });
        socket.on('error', reject);
      });
    expect(await upgrade()).toMatch(/^HTTP\/1\.1 101/);
    expect(await upgrade()).toMatch(/^HTTP\/1\.1 101/);
    expect(await upgrade()).toMatch(/^HTTP\/1\.1 429/);
  });
});
