import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { send, startEdgeHarness, tokenFor, type EdgeHarness } from './harness.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const utc = (text: string) => Date.parse(text) / 1000;

// The edge's test clock (EDGE_TEST_CLOCK_OFFSET_SECONDS) put a few seconds before a month's end.
describe.each([
  { crossing: '31 Jan → 1 Feb', start: '2027-01-31T23:59:53Z', monthEnd: '2027-02-01T00:00:00Z', nextMonthEnd: '2027-03-01T00:00:00Z' },
  { crossing: '28 Feb → 1 Mar in a non-leap year', start: '2027-02-28T23:59:53Z', monthEnd: '2027-03-01T00:00:00Z', nextMonthEnd: '2027-04-01T00:00:00Z' },
])('quota month $crossing', ({ start, monthEnd, nextMonthEnd }) => {
  let harness: EdgeHarness;
  let offset: number;
  const plan = `month-${randomBytes(4).toString('hex')}`;
  beforeAll(async () => {
    offset = utc(start) - Date.now() / 1000;
    harness = await startEdgeHarness({ EDGE_TEST_CLOCK_OFFSET_SECONDS: offset.toFixed(3) });
    await harness.admin.query("INSERT INTO plans (id, name, rate_limit_rps, is_public) VALUES ($1, 'Month test', 100000, false)", [plan]);
  });
  afterAll(() => harness?.stop());

  const fakeNow = () => Date.now() / 1000 + offset;

  test('requests refused at the end of the month pass in the next; Retry-After and X-Quota-Reset name the month end', async () => {
    const tenant = await harness.createTenant({ plan });
    await harness.admin.query('UPDATE tenants SET max_api_requests_month = 3 WHERE id = $1', [tenant.id]);
    const call = () => send(harness.edge.url, '/storage/x', { headers: { Authorization: `Bearer ${tokenFor(tenant.id)}` } });
    const accepted = [await call(), await call(), await call()];
    expect(accepted.map((response) => response.status)).toEqual([200, 200, 200]);
    expect(accepted[0]!.headers['x-quota-reset']).toBe(String(utc(monthEnd)));
    const refused = await call();
    const askedAt = fakeNow();
    expect(askedAt).toBeLessThan(utc(monthEnd));
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe('quota_exceeded');
    expect(refused.headers['x-quota-reset']).toBe(String(utc(monthEnd)));
    expect(refused.headers['x-quota-remaining']).toBe('0');
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(Math.abs(retryAfter - (utc(monthEnd) - askedAt))).toBeLessThanOrEqual(1);

    await sleep((utc(monthEnd) - fakeNow() + 0.3) * 1000);
    const nextMonth = await call();
    expect(nextMonth.status).toBe(200);
    expect(nextMonth.headers['x-quota-reset']).toBe(String(utc(nextMonthEnd)));
    expect(nextMonth.headers['x-quota-remaining']).toBe('2');
  });
});
