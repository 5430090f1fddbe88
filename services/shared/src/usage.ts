import type { Pool, PoolClient } from 'pg';

/** A calendar month in UTC; `month` is 1–12. */
export interface UsageMonth {
  year: number;
  month: number;
}

/** How a metric's "used" is read from its hourly buckets. */
export type UsageMetricKind = 'sum' | 'sample';

export interface UsageDay {
  /** A UTC day, YYYY-MM-DD. */
  date: string;
  /** The day's sum (summed metrics) or its last sample (sampled metrics). */
  quantity: number;
}

export interface UsageMetricReport {
  metric: string;
  kind: UsageMetricKind;
  /** The limit in force (the tenant's override, else its plan's); null is unlimited. */
  limit: number | null;
  /** Summed metrics: the month's total; sampled metrics: the month's latest sample (0 without one). */
  used: number;
  /** max(limit − used, 0); null when unlimited. */
  remaining: number | null;
  /** Only the days with a recorded bucket, in order. */
  days: UsageDay[];
}

export interface UsageReport {
  tenant_id: string;
  /** YYYY-MM */
  month: string;
  metrics: UsageMetricReport[];
}

/** A month that is not YYYY-MM with a month from 01 to 12. */
export class InvalidUsageMonthError extends Error {
  constructor(readonly input: string) {
    super(`month must be YYYY-MM with a month from 01 to 12 (got ${JSON.stringify(input)})`);
    this.name = 'InvalidUsageMonthError';
  }
}

/** Parses 'YYYY-MM' strictly: 2026-13, 2026-1 and 2026-01-01 are refused. */
export function parseUsageMonth(input: string): UsageMonth {
  const match = /^(\d{4})-(\d{2})$/.exec(input);
  if (!match) throw new InvalidUsageMonthError(input);
  const year = Number(match[1]);
  const month = Number(match[2]);
  if (year < 1970 || month < 1 || month > 12) throw new InvalidUsageMonthError(input);
  return { year, month };
}

export function isUsageMonth(input: string): boolean {
  try {
    parseUsageMonth(input);
    return true;
  } catch {
    return false;
  }
}

export function formatUsageMonth({ year, month }: UsageMonth): string {
  return `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}`;
}

/** The UTC month `at` falls in. */
export function usageMonthOf(at: Date): UsageMonth {
  return { year: at.getUTCFullYear(), month: at.getUTCMonth() + 1 };
}

/** The first instant of the month (UTC). */
export function usageMonthStart({ year, month }: UsageMonth): Date {
  return new Date(Date.UTC(year, month - 1, 1));
}

/** The first instant of the next month (UTC): when a monthly quota resets. */
export function usageMonthEnd({ year, month }: UsageMonth): Date {
  return new Date(Date.UTC(year, month, 1));
}

interface MetricDefinition {
  metric: string;
  kind: UsageMetricKind;
  limitColumn: keyof LimitsRow;
}

/**
 * The metrics a report covers. storage.bytes is the bytes of the tenant's files, sampled
 * hourly (app.usage_sample); uploads under way count against the limit at once but are
 * not stored bytes until they complete.
 */
export const USAGE_METRICS: readonly MetricDefinition[] = [
  { metric: 'api.requests', kind: 'sum', limitColumn: 'max_api_requests_month' },
  { metric: 'users.count', kind: 'sample', limitColumn: 'max_users' },
  { metric: 'storage.bytes', kind: 'sample', limitColumn: 'max_storage_bytes' },
];

interface LimitsRow {
  max_api_requests_month: string | null;
  max_users: number | null;
  max_storage_bytes: string | null;
}

interface DayRow {
  metric: string;
  date: string;
  quantity: string;
}

const toNumber = (value: string | number | null): number | null => (value === null ? null : Number(value));

/**
 * One tenant's usage for a month: each metric's limit, used, remaining and per-day figures.
 * Reads tenant_usage as the caller's connection may: app_service inside withTenant (RLS
 * shows only that tenant's rows), platform_admin directly; the limits come from
 * app.tenant_limits, which both may call.
 */
export async function monthlyUsageReport(
  db: Pick<Pool | PoolClient, 'query'>,
  tenantId: string,
  month: UsageMonth,
): Promise<UsageReport> {
  const start = usageMonthStart(month);
  const end = usageMonthEnd(month);
  const limits = await db.query<LimitsRow>(
    'SELECT max_api_requests_month, max_users, max_storage_bytes FROM app.tenant_limits($1)',
    [tenantId],
  );
  const sampled = USAGE_METRICS.filter((definition) => definition.kind === 'sample').map((definition) => definition.metric);
  // Per UTC day: the sum of a summed metric's buckets, the last bucket of a sampled one.
  const days = await db.query<DayRow>(
    `SELECT metric, to_char(day, 'YYYY-MM-DD') AS date, quantity::text AS quantity FROM (
       (SELECT metric, date_trunc('day', period_start AT TIME ZONE 'UTC') AS day, sum(quantity) AS quantity
       FROM tenant_usage
       WHERE tenant_id = $1 AND period_start >= $2 AND period_start < $3 AND metric <> ALL ($4::text[])
       GROUP BY 1, 2)
       UNION ALL
       (SELECT DISTINCT ON (metric, date_trunc('day', period_start AT TIME ZONE 'UTC'))
              metric, date_trunc('day', period_start AT TIME ZONE 'UTC'), quantity
       FROM tenant_usage
       WHERE tenant_id = $1 AND period_start >= $2 AND period_start < $3 AND metric = ANY ($4::text[])
       ORDER BY metric, date_trunc('day', period_start AT TIME ZONE 'UTC'), period_start DESC)
     ) per_day
     ORDER BY metric, day`,
    [tenantId, start, end, sampled],
  );
  const limitsRow = limits.rows[0];
  const metrics = USAGE_METRICS.map((definition): UsageMetricReport => {
    const metricDays = days.rows
      .filter((row) => row.metric === definition.metric)
      .map((row) => ({ date: row.date, quantity: Number(row.quantity) }));
    const used =
      definition.kind === 'sum'
        ? metricDays.reduce((total, day) => total + day.quantity, 0)
        : (metricDays.at(-1)?.quantity ?? 0);
    const limit = limitsRow ? toNumber(limitsRow[definition.limitColumn]) : null;
    return {
      metric: definition.metric,
      kind: definition.kind,
      limit,
      used,
      remaining: limit === null ? null : Math.max(limit - used, 0),
      days: metricDays,
    };
  });
  return { tenant_id: tenantId, month: formatUsageMonth(month), metrics };
}
