import { isUuid } from '../../../shared/src/ids.js';

/** The Redis stream the edge appends its counted requests to (see docs/edge.md). */
export const USAGE_STREAM = 'usage:api';

/** The metric the stream's counts are stored under. */
export const API_REQUESTS_METRIC = 'api.requests';

const DIGITS = /^[0-9]{1,16}$/;
// Hours from 1970 to the last one Postgres' timestamptz and JavaScript's Date both hold well.
const LAST_HOUR_SECONDS = 253_402_297_200; // 9999-12-31T23:00:00Z

/** One valid entry: `count` requests of `tenantId` counted in the hour starting at `hourSeconds`. */
export interface UsageEntry {
  tenantId: string;
  hourSeconds: number;
  count: number;
}

export type ParsedEntry = { entry: UsageEntry } | { malformed: string };

/** A stream entry's fields as ioredis returns them: [name, value, name, value, …]. */
export function parseUsageEntry(fields: readonly string[]): ParsedEntry {
  const values = new Map<string, string>();
  for (let index = 0; index + 1 < fields.length; index += 2) values.set(fields[index]!, fields[index + 1]!);
  const tenant = values.get('tenant');
  const hour = values.get('hour');
  const count = values.get('count');
  if (tenant === undefined || !isUuid(tenant)) return { malformed: 'tenant is not a uuid' };
  if (hour === undefined || !DIGITS.test(hour)) return { malformed: 'hour is not a whole number of seconds' };
  const hourSeconds = Number(hour);
  if (hourSeconds % 3600 !== 0 || hourSeconds > LAST_HOUR_SECONDS) return { malformed: 'hour is not the start of an hour' };
  if (count === undefined || !DIGITS.test(count)) return { malformed: 'count is not a whole number' };
  const requests = Number(count);
  if (requests < 1 || !Number.isSafeInteger(requests)) return { malformed: 'count is not a positive safe integer' };
  return { entry: { tenantId: tenant.toLowerCase(), hourSeconds, count: requests } };
}

/** A stream entry id `<ms>-<seq>`, compared as numbers (as strings, '10-0' < '9-0'). */
export function compareEntryIds(a: string, b: string): number {
  const [aMs, aSeq] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bMs, bSeq] = b.split('-').map(BigInt) as [bigint, bigint];
  if (aMs !== bMs) return aMs < bMs ? -1 : 1;
  if (aSeq !== bSeq) return aSeq < bSeq ? -1 : 1;
  return 0;
}

/** Sums valid entries per (tenant, hour): the arrays app.usage_add takes. */
export function aggregateEntries(entries: readonly UsageEntry[]): { tenantIds: string[]; metrics: string[]; hours: Date[]; quantities: string[] } {
  const totals = new Map<string, { tenantId: string; hourSeconds: number; count: number }>();
  for (const entry of entries) {
    const key = `${entry.tenantId}|${entry.hourSeconds}`;
    const total = totals.get(key);
    if (total) total.count += entry.count;
    else totals.set(key, { ...entry });
  }
  const rows = [...totals.values()];
  return {
    tenantIds: rows.map((row) => row.tenantId),
    metrics: rows.map(() => API_REQUESTS_METRIC),
    hours: rows.map((row) => new Date(row.hourSeconds * 1000)),
    quantities: rows.map((row) => String(row.count)),
  };
}
