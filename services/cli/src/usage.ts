import {
  formatUsageMonth,
  InvalidUsageMonthError,
  monthlyUsageReport,
  parseUsageMonth,
  usageMonthOf,
  type UsageMonth,
  type UsageReport,
} from '../../shared/src/usage.js';
import { adminPool } from './context.js';
import { CliError } from './errors.js';
import { namedTenant } from './plans.js';

/**
 * --month as typed, or the current UTC month. A month that is not YYYY-MM (2026-13, 26-1)
 * or has not begun is a usage error: a future month has no usage to show, only a typo.
 */
export function usageMonthOption(text: string | undefined, now = new Date()): UsageMonth {
  const current = usageMonthOf(now);
  if (text === undefined) return current;
  let month: UsageMonth;
  try {
    month = parseUsageMonth(text.trim());
  } catch (error) {
    if (!(error instanceof InvalidUsageMonthError)) throw error;
    throw new CliError(`--month '${text}' is not a month: give YYYY-MM with a month from 01 to 12, e.g. --month ${formatUsageMonth(current)}`, 2);
  }
  if (month.year * 12 + month.month > current.year * 12 + current.month) {
    throw new CliError(`--month ${formatUsageMonth(month)} has not begun (the current UTC month is ${formatUsageMonth(current)})`, 2);
  }
  return month;
}

export interface TenantUsageReport extends UsageReport {
  slug: string;
}

/** The shared monthly report (the same as GET /billing/usage gives owners), for a tenant the operator named. */
export async function tenantUsage(reference: string, month: UsageMonth): Promise<TenantUsageReport> {
  const db = adminPool();
  const tenant = await namedTenant(reference, db);
  return { ...(await monthlyUsageReport(db, tenant.id, month)), slug: tenant.slug };
}
