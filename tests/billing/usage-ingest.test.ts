import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import type { PoolClient } from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createUsageWorker, type UsageWorker, type UsageWorkerDeps } from '../../services/billing/src/usage/index.js';
import { compareEntryIds, parseUsageEntry } from '../../services/billing/src/usage/stream.js';
import type { Mailer } from '../../services/shared/src/mail/mailer.js';
import { services } from '../helpers/database.js';
import { createBillingTenant, startWorkerKit, type WorkerKit } from './worker-kit.js';

/**
 * The usage worker on a database of its own (it ingests and mails for every tenant there),
 * the shared Redis with a stream per test (as the edge appends: XADD tenant, hour, count).
 */
let kit: WorkerKit;
beforeAll(async () => {
  kit = await startWorkerKit();
});
afterAll(async () => {
  await kit.close();
});

const HOUR = 3600;
const thisHour = () => Math.floor(Date.now() / 1000 / HOUR) * HOUR;
const freshStream = () => `usage:api:test:${randomBytes(6).toString('hex')}`;

function worker(stream: string, options: Partial<UsageWorkerDeps> = {}): UsageWorker {
  return createUsageWorker({
    pool: kit.service,
    redis: kit.redis,
    mailer: kit.mailer,
    logger: pino({ level: 'silent' }),
    now: () => kit.clock.now,
    stream,
    ...options,
  });
}

interface Appended {
  tenant: string;
  hour: number;
  count: number;
}

/** Appends entries as the edge does: one pipeline of XADDs. */
async function append(stream: string, entries: readonly (Appended | Record<string, string>)[]): Promise<void> {
  const pipeline = kit.redis.pipeline();
  for (const entry of entries) {
    const fields = Object.entries(entry).flatMap(([name, value]) => [name, String(value)]);
    pipeline.xadd(stream, 'MAXLEN', '~', '1000000', '*', ...fields);
  }
  const results = await pipeline.exec();
  for (const [error] of results ?? []) if (error) throw error;
}

/** tenant → hour (seconds) → requests recorded in tenant_usage. */
async function recorded(tenantIds: string[]): Promise<Map<string, number>> {
  const { rows } = await kit.admin.query<{ tenant_id: string; hour: string; quantity: string }>(
    `SELECT tenant_id, extract(epoch FROM period_start)::bigint::text AS hour, quantity::text FROM tenant_usage
     WHERE metric = 'api.requests' AND tenant_id = ANY ($1::uuid[])`,
    [tenantIds],
  );
  return new Map(rows.map((row) => [`${row.tenant_id}|${row.hour}`, Number(row.quantity)]));
}

function expectedTotals(entries: readonly Appended[]): Map<string, number> {
  const totals = new Map<string, number>();
  for (const entry of entries) totals.set(`${entry.tenant}|${entry.hour}`, (totals.get(`${entry.tenant}|${entry.hour}`) ?? 0) + entry.count);
  return totals;
}

async function offsetOf(stream: string): Promise<string | null> {
  const { rows } = await kit.admin.query<{ last_entry_id: string }>('SELECT last_entry_id FROM usage_ingest_offsets WHERE stream = $1', [stream]);
  return rows[0]?.last_entry_id ?? null;
}

async function tenants(count: number, label: string): Promise<string[]> {
  const created = [];
  for (let index = 0; index < count; index += 1) created.push((await createBillingTenant(kit.admin, `${label}${index}`)).tenantId);
  return created;
}

function randomEntries(tenantIds: string[], count: number): Appended[] {
  const hour = thisHour();
  return Array.from({ length: count }, (_, index) => ({
    tenant: tenantIds[index % tenantIds.length]!,
    hour: hour - HOUR * (index % 3),
    count: 1 + (index % 17),
  }));
}

describe('ingesting usage:api into tenant_usage', () => {
  test('every counted request lands in its hour exactly once, across batches; the stream is trimmed to the offset', async () => {
    const stream = freshStream();
    const ids = await tenants(3, 'exact');
    const entries = randomEntries(ids, 2_500);
    await append(stream, entries);
    const usage = worker(stream, { batchSize: 333 });
    expect(await usage.drain()).toBe(2_500);
    expect(await recorded(ids)).toEqual(expectedTotals(entries));

    const [last] = (await kit.redis.xrevrange(stream, '+', '-', 'COUNT', 1)) as [string, string[]][];
    expect(await offsetOf(stream)).toBe(last![0]);
    // Only the committed entry itself stays (reads start after it).
    expect(await kit.redis.xlen(stream)).toBe(1);

    // Nothing is read twice, by this worker or a fresh one.
    expect(await usage.drain()).toBe(0);
    expect(await worker(stream).drain()).toBe(0);
    expect(await recorded(ids)).toEqual(expectedTotals(entries));

    const more = randomEntries(ids, 10);
    await append(stream, more);
    expect(await worker(stream).drain()).toBe(10);
    expect(await recorded(ids)).toEqual(expectedTotals([...entries, ...more]));
  });

  test('malformed entries and unknown tenants are skipped and never block the stream', async () => {
    const stream = freshStream();
    const [tenant] = await tenants(1, 'malformed');
    const hour = thisHour();
    const good = { tenant: tenant!, hour, count: 5 };
    await append(stream, [
      good,
      { tenant: 'not-a-uuid', hour: String(hour), count: '3' },
      { tenant: tenant!, hour: String(hour + 17), count: '3' },
      { tenant: tenant!, hour: String(hour), count: '-3' },
      { tenant: tenant!, hour: String(hour), count: '0' },
      { tenant: tenant!, hour: String(hour), count: '1e3' },
      { tenant: tenant!, hour: '99999999999999', count: '3' },
      { tenant: tenant!, count: '3' },
      { tenant: randomUUID(), hour: String(hour), count: '4' },
      good,
    ]);
    expect(await worker(stream, { batchSize: 4 }).drain()).toBe(10);
    expect(await recorded([tenant!])).toEqual(new Map([[`${tenant}|${hour}`, 10]]));
  });

  test('a worker killed mid-flush (its connection ends after the counts were added, before COMMIT) loses and doubles nothing', async () => {
    const stream = freshStream();
    const ids = await tenants(2, 'killed');
    const entries = randomEntries(ids, 900);
    await append(stream, entries);

    let flushes = 0;
    // The second flush dies: its connection is terminated while it holds the transaction.
    const dying = worker(stream, {
      batchSize: 300,
      beforeCommit: async (client: PoolClient) => {
        flushes += 1;
        if (flushes !== 2) return;
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await kit.admin.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
      },
    });
    await expect(dying.drain()).rejects.toThrow();
    // The first batch is committed, the second is not, and the stream still holds it.
    const afterCrash = await recorded(ids);
    expect(afterCrash).toEqual(expectedTotals(entries.slice(0, 300)));
    expect(await kit.redis.xlen(stream)).toBe(601);

    // Restarted (a new worker), it reads on from the committed offset.
    expect(await worker(stream, { batchSize: 300 }).drain()).toBe(600);
    expect(await recorded(ids)).toEqual(expectedTotals(entries));
  });

  test('a worker process killed with SIGKILL while it holds the flush loses and doubles nothing', async () => {
    const stream = freshStream();
    const ids = await tenants(2, 'sigkill');
    const entries = randomEntries(ids, 500);
    await append(stream, entries);
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'usage-ingest-child.ts')], {
      env: {
        ...process.env,
        DATABASE_URL: kit.database.url('app_service'),
        REDIS_URL: services().endpoints.redisUrl,
        STREAM: stream,
        BATCH_SIZE: '200',
        HOLD_AT_FLUSH: '2',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const holding = new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('holding')) resolve();
      });
      child.on('exit', () => reject(new Error(`the worker exited before holding its flush:\n${output}`)));
    });
    await holding;
    // Its second batch is in tenant_usage, uncommitted, when the process dies.
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    expect(await recorded(ids)).toEqual(expectedTotals(entries.slice(0, 200)));
    expect(await worker(stream, { batchSize: 200 }).drain()).toBe(300);
    expect(await recorded(ids)).toEqual(expectedTotals(entries));
  });

  test('concurrent ingesters, while the edge keeps appending, still add every entry exactly once', async () => {
    const stream = freshStream();
    const ids = await tenants(4, 'concurrent');
    const workers = Array.from({ length: 4 }, () => worker(stream, { batchSize: 50 }));
    const all: Appended[] = [];
    let consumed = 0;
    for (let round = 0; round < 5; round += 1) {
      const entries = randomEntries(ids, 400);
      all.push(...entries);
      const appending = append(stream, entries);
      const drained = await Promise.all([...workers.map((usage) => usage.drain()), appending.then(() => 0)]);
      consumed += drained.reduce((sum, value) => sum + value, 0);
    }
    consumed += (await Promise.all(workers.map((usage) => usage.drain()))).reduce((sum, value) => sum + value, 0);
    expect(consumed).toBe(all.length);
    expect(await recorded(ids)).toEqual(expectedTotals(all));
  });
});

describe('sampling users.count', () => {
  test('once at the first pass and again in each new hour of the clock, as the latest member count', async () => {
    const stream = freshStream();
    const tenant = await createBillingTenant(kit.admin, 'sample');
    const samples = async () =>
      (
        await kit.admin.query<{ period_start: Date; quantity: string }>(
          "SELECT period_start, quantity::text FROM tenant_usage WHERE tenant_id = $1 AND metric = 'users.count' ORDER BY period_start",
          [tenant.tenantId],
        )
      ).rows.map((row) => [row.period_start.toISOString(), Number(row.quantity)]);
    const clock = { now: new Date('2031-05-31T22:20:00Z') };
    const usage = worker(stream, { now: () => clock.now });
    await usage.tick();
    expect(await samples()).toEqual([['2031-05-31T22:00:00.000Z', 1]]);

    const member = await kit.admin.query<{ id: string }>("INSERT INTO users (email, display_name) VALUES ($1, 'M') RETURNING id", [`m-${randomBytes(4).toString('hex')}@example.test`]);
    await kit.admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'member')", [tenant.tenantId, member.rows[0]!.id]);
    clock.now = new Date('2031-05-31T22:59:59Z');
    await usage.tick();
    expect(await samples()).toEqual([['2031-05-31T22:00:00.000Z', 1]]);

    clock.now = new Date('2031-05-31T23:00:01Z');
    await usage.tick();
    expect(await samples()).toEqual([
      ['2031-05-31T22:00:00.000Z', 1],
      ['2031-05-31T23:00:00.000Z', 2],
    ]);
  });
});

describe('quota mails', () => {
  async function quotaTenant(label: string, quota: number) {
    const tenant = await createBillingTenant(kit.admin, label);
    await kit.admin.query('UPDATE tenants SET max_api_requests_month = $2 WHERE id = $1', [tenant.tenantId, quota]);
    return tenant;
  }
  const mailsTo = (email: string) => kit.mail.mails.filter((mail) => mail.to.includes(email.toLowerCase()));
  const notices = async (tenantId: string) =>
    (await kit.admin.query<{ threshold_percent: number; used: string; quota: string }>(
      'SELECT threshold_percent, used::text, quota::text FROM quota_notices WHERE tenant_id = $1 ORDER BY threshold_percent',
      [tenantId],
    )).rows.map((row) => [row.threshold_percent, Number(row.used), Number(row.quota)]);

  test('owners hear once at 80 % and once at 100 %, however many workers drain', async () => {
    const stream = freshStream();
    const tenant = await quotaTenant('mail', 100);
    const hour = thisHour();
    const workers = [worker(stream), worker(stream), worker(stream)];
    const drainAll = () => Promise.all(workers.map((usage) => usage.drain()));

    await append(stream, [{ tenant: tenant.tenantId, hour, count: 79 }]);
    await drainAll();
    expect(mailsTo(tenant.ownerEmail)).toHaveLength(0);

    await append(stream, [{ tenant: tenant.tenantId, hour, count: 1 }]);
    await drainAll();
    await drainAll();
    expect(mailsTo(tenant.ownerEmail).map((mail) => mail.subject)).toEqual([`Tenant mail has used 80 % of its monthly API quota`]);
    expect(mailsTo(tenant.ownerEmail)[0]!.text).toMatch(/80 of its 100 API requests this month \(80 %\)/);

    await append(stream, [{ tenant: tenant.tenantId, hour, count: 25 }]);
    await drainAll();
    await drainAll();
    const mails = mailsTo(tenant.ownerEmail);
    expect(mails.map((mail) => mail.subject)).toEqual([
      'Tenant mail has used 80 % of its monthly API quota',
      'Tenant mail has used its monthly API quota',
    ]);
    const nextMonth = new Date(Date.UTC(new Date(hour * 1000).getUTCFullYear(), new Date(hour * 1000).getUTCMonth() + 1, 1));
    expect(mails[1]!.text).toContain(`105 of its 100 API requests`);
    expect(mails[1]!.text).toContain(`${nextMonth.toISOString().slice(0, 10)} 00:00 UTC`);
    expect(await notices(tenant.tenantId)).toEqual([
      [80, 80, 100],
      [100, 105, 100],
    ]);
  });

  test('straight past 100 %: one mail saying 100 %, both thresholds recorded', async () => {
    const stream = freshStream();
    const tenant = await quotaTenant('jump', 50);
    await append(stream, [{ tenant: tenant.tenantId, hour: thisHour(), count: 60 }]);
    await worker(stream).drain();
    expect(mailsTo(tenant.ownerEmail).map((mail) => mail.subject)).toEqual(['Tenant jump has used its monthly API quota']);
    expect((await notices(tenant.tenantId)).map(([threshold]) => threshold)).toEqual([80, 100]);
  });

  test('a mail that fails is logged, the notice stays recorded and is not sent again', async () => {
    const stream = freshStream();
    const tenant = await quotaTenant('failing', 10);
    const failing: Mailer = { send: () => Promise.reject(new Error('smtp down')), close: () => undefined };
    await append(stream, [{ tenant: tenant.tenantId, hour: thisHour(), count: 8 }]);
    await worker(stream, { mailer: failing }).drain();
    expect(await notices(tenant.tenantId)).toEqual([[80, 8, 10]]);
    await worker(stream).drain();
    expect(mailsTo(tenant.ownerEmail)).toHaveLength(0);
  });

  test('a lowered limit is noticed in the next hour of the clock, without a new request', async () => {
    const stream = freshStream();
    const tenant = await quotaTenant('lowered', 1_000);
    // The month's first hours, whatever the day the test runs.
    const monthStart = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1);
    await append(stream, [{ tenant: tenant.tenantId, hour: monthStart / 1000, count: 50 }]);
    const clock = { now: new Date(monthStart + 600_000) };
    const usage = worker(stream, { now: () => clock.now });
    await usage.tick();
    expect(mailsTo(tenant.ownerEmail)).toHaveLength(0);
    await kit.admin.query('UPDATE tenants SET max_api_requests_month = 60 WHERE id = $1', [tenant.tenantId]);
    await usage.tick();
    expect(mailsTo(tenant.ownerEmail)).toHaveLength(0);
    clock.now = new Date(clock.now.getTime() + 3_600_000);
    await usage.tick();
    expect(mailsTo(tenant.ownerEmail).map((mail) => mail.subject)).toEqual(['Tenant lowered has used 80 % of its monthly API quota']);
  });

  test("counts of last month's hours, ingested after midnight, notify for last month", async () => {
    const stream = freshStream();
    const tenant = await quotaTenant('lastmonth', 10);
    const now = new Date();
    const lastMonthHour = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1) / 1000 - HOUR;
    await append(stream, [{ tenant: tenant.tenantId, hour: lastMonthHour, count: 10 }]);
    await worker(stream).drain();
    const { rows } = await kit.admin.query<{ month: string }>("SELECT to_char(month, 'YYYY-MM-DD') AS month FROM quota_notices WHERE tenant_id = $1 AND threshold_percent = 100", [tenant.tenantId]);
    expect(rows.map((row) => row.month)).toEqual([new Date(lastMonthHour * 1000).toISOString().slice(0, 8) + '01']);
  });
});

describe('stream entries', () => {
  test('ids compare as numbers, not as strings', () => {
    expect(compareEntryIds('10-0', '9-5')).toBe(1);
    expect(compareEntryIds('9-10', '9-9')).toBe(1);
    expect(compareEntryIds('9-9', '9-9')).toBe(0);
    expect(compareEntryIds('0-0', '1-0')).toBe(-1);
  });

  test('an entry needs a uuid tenant, an hour start and a positive count', () => {
    const tenant = randomUUID();
    expect(parseUsageEntry(['tenant', tenant, 'hour', '3600', 'count', '2'])).toEqual({ entry: { tenantId: tenant, hourSeconds: 3600, count: 2 } });
    expect(parseUsageEntry(['tenant', tenant, 'hour', '3601', 'count', '2'])).toHaveProperty('malformed');
    expect(parseUsageEntry(['tenant', tenant, 'hour', '3600', 'count', '99999999999999999'])).toHaveProperty('malformed');
  });
});
