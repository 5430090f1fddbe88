import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { uniqueSlug } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';
import { cli, ownerEmail } from './helpers.js';

interface UsageJson {
  tenant_id: string;
  slug: string;
  month: string;
  metrics: Array<{
    metric: string;
    kind: 'sum' | 'sample';
    limit: number | null;
    used: number;
    remaining: number | null;
    days: Array<{ date: string; quantity: number }>;
  }>;
}

describe('tenant usage', () => {
  const admin = poolAs('platform_admin', 2);
  let tenant: { id: string; slug: string };

  const bucket = (metric: string, hour: string, quantity: number) =>
    admin.query(`INSERT INTO tenant_usage (tenant_id, metric, period_start, quantity) VALUES ($1, $2, $3, $4)`, [tenant.id, metric, hour, quantity]);

  beforeAll(async () => {
    const slug = uniqueSlug('usage');
    const created = await cli(['tenant', 'create', 'Usage', '--slug', slug, '--owner', await ownerEmail('usage'), '--json']);
    expect(created.code, created.stderr).toBe(0);
    tenant = { id: created.json<{ id: string }>().id, slug };
    // The free plan's 10,000 requests stay; members get an override of 5 (the plan says 3).
    const limits = await cli(['tenant', 'limits', 'set', slug, '--users', '5', '--reason', 'usage test']);
    expect(limits.code, limits.stderr).toBe(0);

    // October 2026: the hours either side of the month are not October's.
    await bucket('api.requests', '2026-09-30T23:00:00Z', 1000);
    await bucket('api.requests', '2026-10-01T00:00:00Z', 100);
    await bucket('api.requests', '2026-10-01T13:00:00Z', 20);
    await bucket('api.requests', '2026-10-15T05:00:00Z', 3);
    await bucket('api.requests', '2026-10-15T06:00:00Z', 4);
    await bucket('api.requests', '2026-10-31T23:00:00Z', 7000);
    await bucket('api.requests', '2026-11-01T00:00:00Z', 5000);
    // users.count is sampled: a day shows its last sample, the month its latest.
    await bucket('users.count', '2026-09-30T23:00:00Z', 9);
    await bucket('users.count', '2026-10-02T01:00:00Z', 1);
    await bucket('users.count', '2026-10-02T22:00:00Z', 2);
    await bucket('users.count', '2026-10-20T08:00:00Z', 4);
    await bucket('users.count', '2026-10-20T07:00:00Z', 3);
    // storage.bytes is sampled too; the free plan's 1 GiB is its limit.
    await bucket('storage.bytes', '2026-10-10T03:00:00Z', 2048);
  });
  afterAll(async () => {
    await admin.end();
  });

  test('--json: each metric with limit, used, remaining and its days, for that month only', async () => {
    const result = await cli(['tenant', 'usage', tenant.slug, '--month', '2026-10', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.json<UsageJson>()).toEqual({
      tenant_id: tenant.id,
      slug: tenant.slug,
      month: '2026-10',
      metrics: [
        {
          metric: 'api.requests',
          kind: 'sum',
          limit: 10000,
          used: 7127,
          remaining: 2873,
          days: [
            { date: '2026-10-01', quantity: 120 },
            { date: '2026-10-15', quantity: 7 },
            { date: '2026-10-31', quantity: 7000 },
          ],
        },
        {
          metric: 'users.count',
          kind: 'sample',
          limit: 5,
          used: 4,
          remaining: 1,
          days: [
            { date: '2026-10-02', quantity: 2 },
            { date: '2026-10-20', quantity: 4 },
          ],
        },
        {
          metric: 'storage.bytes',
          kind: 'sample',
          limit: 1073741824,
          used: 2048,
          remaining: 1073739776,
          days: [{ date: '2026-10-10', quantity: 2048 }],
        },
      ],
    });
  });

  test('the table: the totals, then one line per day with a column per metric', async () => {
    const result = await cli(['tenant', 'usage', tenant.id, '--month', '2026-10']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`usage of tenant ${tenant.slug} in 2026-10 (UTC):`);
    expect(result.stdout).toMatch(/^METRIC\s+LIMIT\s+USED\s+REMAINING\s+COUNTED AS$/m);
    expect(result.stdout).toMatch(/^api\.requests\s+10000\s+7127\s+2873\s+month total$/m);
    expect(result.stdout).toMatch(/^users\.count\s+5\s+4\s+1\s+latest sample$/m);
    expect(result.stdout).toMatch(/^storage\.bytes\s+1073741824\s+2048\s+1073739776\s+latest sample$/m);
    expect(result.stdout).toMatch(/^DAY\s+API\.REQUESTS\s+USERS\.COUNT\s+STORAGE\.BYTES$/m);
    expect(result.stdout).toMatch(/^2026-10-01\s+120\s+-\s+-$/m);
    expect(result.stdout).toMatch(/^2026-10-02\s+-\s+2\s+-$/m);
    expect(result.stdout).toMatch(/^2026-10-10\s+-\s+-\s+2048$/m);
    expect(result.stdout).toMatch(/^2026-10-31\s+7000\s+-\s+-$/m);
    expect(result.stdout).not.toContain('2026-09-30');
    expect(result.stdout).not.toContain('2026-11-01');

    // September holds only its last hour; an empty month says so.
    const september = await cli(['tenant', 'usage', tenant.slug, '--month', '2026-09', '--json']);
    expect(september.json<UsageJson>().metrics.map((metric) => [metric.used, metric.days.length])).toEqual([
      [1000, 1],
      [9, 1],
      [0, 0],
    ]);
    const empty = await cli(['tenant', 'usage', tenant.slug, '--month', '2026-08']);
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toMatch(/^api\.requests\s+10000\s+0\s+10000\s+month total$/m);
    expect(empty.stdout).toContain('no usage recorded in 2026-08');
  });

  test('without --month: the current UTC month', async () => {
    // A tenant of its own: the October tenant holds a bucket of 1 November.
    const slug = uniqueSlug('usage-now');
    const created = await cli(['tenant', 'create', 'Usage now', '--slug', slug, '--owner', await ownerEmail('usage-now'), '--json']);
    expect(created.code, created.stderr).toBe(0);
    const tenantId = created.json<{ id: string }>().id;
    const now = new Date();
    const hour = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), now.getUTCHours()));
    await admin.query(`INSERT INTO tenant_usage (tenant_id, metric, period_start, quantity) VALUES ($1, 'api.requests', $2, 42)`, [tenantId, hour]);
    const result = await cli(['tenant', 'usage', slug, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const report = result.json<UsageJson>();
    expect(report.month).toBe(hour.toISOString().slice(0, 7));
    expect(report.metrics[0]).toEqual({
      metric: 'api.requests',
      kind: 'sum',
      limit: 10000,
      used: 42,
      remaining: 9958,
      days: [{ date: hour.toISOString().slice(0, 10), quantity: 42 }],
    });
  });

  test('a bad or future month, or an unknown tenant, is a usage error (exit 2) with a clear message', async () => {
    const refused: Array<[string, RegExp]> = [
      ['2026-13', /^tenantry: --month '2026-13' is not a month: give YYYY-MM with a month from 01 to 12, e.g. --month \d{4}-\d{2}\n$/],
      ['26-1', /--month '26-1' is not a month/],
      ['2026-1', /--month '2026-1' is not a month/],
      ['2026-00', /--month '2026-00' is not a month/],
      ['2026-10-01', /--month '2026-10-01' is not a month/],
      ['october', /--month 'october' is not a month/],
      ['2999-01', /^tenantry: --month 2999-01 has not begun \(the current UTC month is \d{4}-\d{2}\)\n$/],
    ];
    for (const [month, message] of refused) {
      const result = await cli(['tenant', 'usage', tenant.slug, '--month', month]);
      expect(result.code, `${month}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stdout).toBe('');
    }
    const next = new Date();
    next.setUTCDate(1);
    next.setUTCMonth(next.getUTCMonth() + 1);
    const nextMonth = await cli(['tenant', 'usage', tenant.slug, '--month', next.toISOString().slice(0, 7)]);
    expect(nextMonth.code).toBe(2);
    expect(nextMonth.stderr).toContain('has not begun');

    const unknown = await cli(['tenant', 'usage', uniqueSlug('nobody'), '--month', '2026-10']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/tenant '.*' not found — see `tenantry tenant list`/);
  });
});
