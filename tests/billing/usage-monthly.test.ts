import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '../../services/shared/src/db/tenant-context.js';
import {
  InvalidUsageMonthError,
  monthlyUsageReport,
  parseUsageMonth,
  usageMonthEnd,
  usageMonthOf,
} from '../../services/shared/src/usage.js';
import { seedTenant, type SeededTenant } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';

let admin: pg.Pool;
let service: pg.Pool;
let tenant: SeededTenant;
let other: SeededTenant;

const at = (iso: string) => new Date(iso);

beforeAll(async () => {
  admin = poolAs('platform_admin');
  service = poolAs('app_service');
  tenant = await seedTenant(admin, 'usage-monthly');
  other = await seedTenant(admin, 'usage-monthly-other');
  // A month far from now, so the seed's current-hour row is not in it.
  await admin.query(
    `INSERT INTO tenant_usage (tenant_id, metric, period_start, quantity) VALUES
       ($1, 'api.requests', '2024-02-01T00:00:00Z', 10),
       ($1, 'api.requests', '2024-02-01T23:00:00Z', 5),
       ($1, 'api.requests', '2024-02-29T23:00:00Z', 7),
       ($1, 'api.requests', '2024-03-01T00:00:00Z', 1000),
       ($1, 'api.requests', '2024-01-31T23:00:00Z', 1000),
       ($1, 'users.count', '2024-02-03T01:00:00Z', 4),
       ($1, 'users.count', '2024-02-03T07:00:00Z', 6),
       ($1, 'users.count', '2024-02-10T00:00:00Z', 3),
       ($1, 'storage.bytes', '2024-02-20T00:00:00Z', 2048),
       ($2, 'api.requests', '2024-02-05T00:00:00Z', 99)`,
    [tenant.tenantId, other.tenantId],
  );
  await admin.query('UPDATE tenants SET max_api_requests_month = 20, max_users = 10, max_storage_bytes = 4096 WHERE id = $1', [tenant.tenantId]);
});

afterAll(async () => {
  await Promise.all([admin.end(), service.end()]);
});

describe('monthlyUsageReport', () => {
  const expected = (tenantId: string) => ({
    tenant_id: tenantId,
    month: '2024-02',
    metrics: [
      {
        metric: 'api.requests',
        kind: 'sum',
        limit: 20,
        used: 22,
        remaining: 0,
        days: [
          { date: '2024-02-01', quantity: 15 },
          { date: '2024-02-29', quantity: 7 },
        ],
      },
      {
        metric: 'users.count',
        kind: 'sample',
        limit: 10,
        used: 3,
        remaining: 7,
        days: [
          { date: '2024-02-03', quantity: 6 },
          { date: '2024-02-10', quantity: 3 },
        ],
      },
      { metric: 'storage.bytes', kind: 'sample', limit: 4096, used: 2048, remaining: 2048, days: [{ date: '2024-02-20', quantity: 2048 }] },
    ],
  });

  it('sums api.requests within the UTC month, takes the latest users.count sample, and applies the limits in force', async () => {
    const report = await monthlyUsageReport(admin, tenant.tenantId, { year: 2024, month: 2 });
    expect(report).toEqual(expected(tenant.tenantId));
  });

  it('reads the same through app_service inside the tenant context, and sees no other tenant there', async () => {
    const report = await withTenant(service, { tenantId: tenant.tenantId, role: 'owner' }, (client) =>
      monthlyUsageReport(client, tenant.tenantId, { year: 2024, month: 2 }),
    );
    expect(report).toEqual(expected(tenant.tenantId));
    const crossTenant = await withTenant(service, { tenantId: tenant.tenantId, role: 'owner' }, (client) =>
      monthlyUsageReport(client, other.tenantId, { year: 2024, month: 2 }),
    );
    expect(crossTenant.metrics[0]).toMatchObject({ used: 0, days: [] });
  });

  it('reports the plan limit, remaining and an empty month', async () => {
    await admin.query('UPDATE tenants SET max_api_requests_month = NULL, max_users = NULL WHERE id = $1', [tenant.tenantId]);
    try {
      const report = await monthlyUsageReport(admin, tenant.tenantId, { year: 2023, month: 12 });
      const [requests, users] = report.metrics;
      const plan = await admin.query<{ max_api_requests_month: string; max_users: number }>(
        "SELECT max_api_requests_month, max_users FROM plans WHERE id = 'pro'",
      );
      expect(requests).toEqual({
        metric: 'api.requests',
        kind: 'sum',
        limit: Number(plan.rows[0]!.max_api_requests_month),
        used: 0,
        remaining: Number(plan.rows[0]!.max_api_requests_month),
        days: [],
      });
      expect(users).toMatchObject({ used: 0, limit: plan.rows[0]!.max_users, remaining: plan.rows[0]!.max_users });
    } finally {
      await admin.query('UPDATE tenants SET max_api_requests_month = 20, max_users = 10 WHERE id = $1', [tenant.tenantId]);
    }
  });
});

describe('usage months', () => {
  it('parses YYYY-MM and refuses anything else with a clear message', () => {
    expect(parseUsageMonth('2026-01')).toEqual({ year: 2026, month: 1 });
    expect(parseUsageMonth('2026-12')).toEqual({ year: 2026, month: 12 });
    for (const bad of ['2026-13', '2026-00', '2026-1', '2026-01-01', '', 'abcd-ef', ' 2026-01']) {
      expect(() => parseUsageMonth(bad)).toThrow(InvalidUsageMonthError);
    }
    expect(() => parseUsageMonth('2026-13')).toThrow(/YYYY-MM/);
  });

  it('knows when a month resets, December included', () => {
    expect(usageMonthOf(at('2026-01-31T23:59:59.999Z'))).toEqual({ year: 2026, month: 1 });
    expect(usageMonthEnd({ year: 2026, month: 12 }).toISOString()).toBe('2027-01-01T00:00:00.000Z');
    expect(usageMonthEnd({ year: 2026, month: 2 }).toISOString()).toBe('2026-03-01T00:00:00.000Z');
  });
});
