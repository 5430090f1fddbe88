import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import getPort from 'get-port';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startRedis, stopProcess, type RedisInstance } from '../../scripts/native/services.js';
import { send, startEdgeHarness, tokenFor, type EdgeHarness, type Response } from './harness.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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

const counted = (response: Response) => response.status === 200 && response.headers['x-quota-limit'] !== undefined;

// A Redis of this file's own: the tests stop, kill and restart it.
describe('monthly quota while Redis is stopped, killed and restarted empty', () => {
  let redisServer: RedisInstance;
  let redisPort: number;
  let dataDir: string;
  let harness: EdgeHarness;
  let redis: Redis;
  const plan = `outage-${randomBytes(4).toString('hex')}`;

  const startOwnRedis = async () => {
    redisServer = await startRedis({ port: redisPort, dataDir, logFile: path.join(dataDir, 'redis.log'), detached: false });
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'tenantry-quota-redis-'));
    redisPort = await getPort();
    await startOwnRedis();
    harness = await startEdgeHarness({ REDIS_URL: redisServer.url, EDGE_REDIS_RETRY_SECONDS: '0.5' });
    await harness.admin.query("INSERT INTO plans (id, name, rate_limit_rps, is_public) VALUES ($1, 'Outage test', 100000, false)", [plan]);
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
  });
  afterAll(async () => {
    redis?.disconnect();
    await harness?.stop();
    if (redisServer) {
      process.kill(redisServer.pid, 'SIGCONT');
      await stopProcess(redisServer.pid);
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  const call = (token: string) => send(harness.edge.url, '/v1/graphql', { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: '{}' });

  /** Clients sending requests until `stop` resolves; every response. */
  async function load(token: string, clients: number, during: () => Promise<void>): Promise<Response[]> {
    const responses: Response[] = [];
    let running = true;
    const loops = Array.from({ length: clients }, async () => {
      while (running) {
        responses.push(await call(token));
        await sleep(5);
      }
    });
    try {
      await during();
    } finally {
      running = false;
      await Promise.all(loops);
    }
    return responses;
  }

  test('Redis stopped (SIGSTOP) mid-run: no 5xx, requests pass uncounted, counting resumes; the stream holds exactly the counted ones', async () => {
    const tenant = await harness.createTenant({ plan });
    await harness.admin.query('UPDATE tenants SET max_api_requests_month = 1000000 WHERE id = $1', [tenant.id]);
    const token = tokenFor(tenant.id);
    const responses = await load(token, 8, async () => {
      await sleep(1000);
      process.kill(redisServer.pid, 'SIGSTOP');
      await sleep(2500);
      process.kill(redisServer.pid, 'SIGCONT');
      await sleep(2500);
    });
    expect(responses.filter((response) => response.status >= 500)).toEqual([]);
    expect(responses.every((response) => response.status === 200)).toBe(true);
    const uncounted = responses.filter((response) => !counted(response));
    expect(uncounted.length).toBeGreaterThan(0);
    // Counting resumed: the last responses are counted again.
    expect(responses.slice(-20).every(counted)).toBe(true);
    // What passed uncounted is never appended; what was counted is, once.
    await sleep(2500);
    expect(await streamedCount(redis, harness.usageStream, tenant.id)).toBe(responses.filter(counted).length);
  });

  test('Redis restarted empty rebuilds the month from tenant_usage, not from zero', async () => {
    const tenant = await harness.createTenant({ plan });
    await harness.admin.query('UPDATE tenants SET max_api_requests_month = 1000 WHERE id = $1', [tenant.id]);
    // 900 already recorded this month, before the edge first resolves the tenant.
    await harness.admin.query(
      `INSERT INTO tenant_usage (tenant_id, metric, period_start, quantity)
       VALUES ($1, 'api.requests', date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', 900)`,
      [tenant.id],
    );
    const token = tokenFor(tenant.id);
    const before: Response[] = [];
    for (let index = 0; index < 20; index++) before.push(await call(token));
    expect(before.filter(counted)).toHaveLength(20);
    // Idle leases go back to Redis; then Redis dies and comes back without its data.
    await sleep(2500);
    await stopProcess(redisServer.pid, 0);
    await startOwnRedis();
    const after: Response[] = [];
    for (let index = 0; index < 300 && after.filter((response) => response.status === 429).length < 20; index++) {
      after.push(await call(token));
    }
    expect(after.filter((response) => response.status >= 500)).toEqual([]);
    // The month starts again from the 900 tenant_usage holds: 100 more, not 1,000.
    expect(after.filter(counted)).toHaveLength(100);
    const refused = after.find((response) => response.status === 429)!;
    expect(refused.json.errors[0].extensions.code).toBe('quota_exceeded');
  });

  test('cluster rate limit with Redis stopped: each edge falls back to its node limiter, no 5xx', async () => {
    const limit = 40;
    const rpsPlan = `outage-rps-${randomBytes(4).toString('hex')}`;
    await harness.admin.query("INSERT INTO plans (id, name, rate_limit_rps, is_public) VALUES ($1, 'Outage rps', $2, false)", [rpsPlan, limit]);
    const cluster = await harness.startAnotherEdge({ EDGE_RATE_LIMIT_SCOPE: 'cluster' });
    const tenant = await harness.createTenant({ plan: rpsPlan });
    const token = tokenFor(tenant.id);
    process.kill(redisServer.pid, 'SIGSTOP');
    const responses: Response[] = [];
    try {
      const until = Date.now() + 2500;
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          while (Date.now() < until) responses.push(await send(cluster.url, '/storage/x', { headers: { Authorization: `Bearer ${token}` } }));
        }),
      );
    } finally {
      process.kill(redisServer.pid, 'SIGCONT');
    }
    expect(responses.filter((response) => response.status >= 500)).toEqual([]);
    const perSecond = new Map<string, number>();
    for (const response of responses) {
      if (response.status === 200) {
        const reset = String(response.headers['x-ratelimit-reset']);
        perSecond.set(reset, (perSecond.get(reset) ?? 0) + 1);
      } else {
        expect(response.json.error.code).toBe('rate_limited');
      }
    }
    // The node limiter lets a batch's overshoot through (5 % of the limit per worker at most).
    for (const accepted of perSecond.values()) expect(accepted).toBeLessThanOrEqual(limit * 1.05 + 2);
    expect(responses.some((response) => response.status === 429)).toBe(true);
  });
});
