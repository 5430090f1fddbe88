import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { formatUsageMonth, usageMonthOf } from '../../services/shared/src/usage.js';
import { bearer, expectError, seedBillingTenant, startBillingHarness, type BillingHarness, type BillingTenant } from './harness.js';

let h: BillingHarness;
let tenant: BillingTenant;
let other: BillingTenant;

beforeAll(async () => {
  h = await startBillingHarness();
  tenant = await seedBillingTenant(h.admin, 'usage-route');
  other = await seedBillingTenant(h.admin, 'usage-route-other');
  await h.admin.query('UPDATE tenants SET max_api_requests_month = 1000, max_storage_bytes = 10000 WHERE id = $1', [tenant.tenantId]);
  await h.admin.query(
    `INSERT INTO tenant_usage (tenant_id, metric, period_start, quantity) VALUES
       ($1, 'api.requests', '2025-03-01T00:00:00Z', 300), ($1, 'api.requests', '2025-03-31T23:00:00Z', 50),
       ($1, 'users.count', '2025-03-02T05:00:00Z', 5), ($2, 'api.requests', '2025-03-10T00:00:00Z', 999),
       ($1, 'storage.bytes', '2025-03-05T00:00:00Z', 1000), ($1, 'storage.bytes', '2025-03-05T10:00:00Z', 4000)`,
    [tenant.tenantId, other.tenantId],
  );
});
afterAll(async () => {
  await h.close();
});

const usage = (token: string, query = '') => request(h.app).get(`/billing/usage${query}`).set(bearer(token));

describe('GET /billing/usage', () => {
  test("an owner reads the month's limit, used, remaining and days of each metric", async () => {
    const answer = await usage(h.token(tenant.users.owner, tenant.tenantId, 'owner'), '?month=2025-03').expect(200);
    expect(answer.body).toEqual({
      tenant_id: tenant.tenantId,
      month: '2025-03',
      metrics: [
        {
          metric: 'api.requests',
          kind: 'sum',
          limit: 1000,
          used: 350,
          remaining: 650,
          days: [
            { date: '2025-03-01', quantity: 300 },
            { date: '2025-03-31', quantity: 50 },
          ],
        },
        { metric: 'users.count', kind: 'sample', limit: 10, used: 5, remaining: 5, days: [{ date: '2025-03-02', quantity: 5 }] },
        { metric: 'storage.bytes', kind: 'sample', limit: 10000, used: 4000, remaining: 6000, days: [{ date: '2025-03-05', quantity: 4000 }] },
      ],
    });
  });

  test('an admin reads it too; without ?month it is the current UTC month', async () => {
    const answer = await usage(h.token(tenant.users.admin, tenant.tenantId, 'admin')).expect(200);
    expect(answer.body.month).toBe(formatUsageMonth(usageMonthOf(new Date())));
    expect(answer.body.tenant_id).toBe(tenant.tenantId);
  });

  test('members and guests are refused; a member granted billing:write may read', async () => {
    for (const user of [tenant.users.member, tenant.users.guest]) {
      const answer = await usage(h.token(user, tenant.tenantId, 'member'), '?month=2025-03').expect(403);
      expect(answer.body.error.code).toBeTypeOf('string');
    }
    await usage(h.token(tenant.users.billingWriter, tenant.tenantId, 'member'), '?month=2025-03').expect(200);
  });

  test("a token never reads another tenant's usage", async () => {
    await usage(h.token(tenant.users.owner, tenant.tenantId, 'owner'), '?month=2025-03').set('X-Tenant-Id', other.tenantId).expect(403);
  });

  test('a month that is not YYYY-MM is a 422, not a 500', async () => {
    const token = h.token(tenant.users.owner, tenant.tenantId, 'owner');
    for (const month of ['2026-13', '2026-00', '2026-1', 'march', '2026-03-01']) {
      const answer = await usage(token, `?month=${encodeURIComponent(month)}`).expect(422);
      expectError(answer.body, 'validation_failed');
      expect(answer.body.error.message).toMatch(/YYYY-MM/);
    }
  });

  test('the OpenAPI document describes it, with its month parameter', async () => {
    const document = (await request(h.app).get('/billing/openapi.json').expect(200)).body as {
      paths: Record<string, { get?: { parameters?: Array<{ name: string; in: string }> } }>;
    };
    expect(document.paths['/billing/usage']?.get?.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'month', in: 'query' })]));
  });

  test('without a token: 401', async () => {
    await request(h.app).get('/billing/usage').expect(401);
  });
});
