import type { Pool } from 'pg';
import { withTenant } from '../../../shared/src/db/tenant-context.js';
import type { Logger } from '../../../shared/src/logger.js';
import type { Mailer } from '../../../shared/src/mail/mailer.js';
import { quotaMail } from '../../../shared/src/mail/templates.js';
import { formatUsageMonth, usageMonthEnd, type UsageMonth } from '../../../shared/src/usage.js';
import { API_REQUESTS_METRIC } from './stream.js';

interface DueRow {
  tenant_id: string;
  threshold_percent: 80 | 100;
  used: string;
  quota: string;
}

interface RecordedNotice {
  tenantName: string;
  owners: string[];
  thresholdPercent: 80 | 100;
  used: number;
  quota: number;
}

/**
 * Records the notices a tenant is due (the primary key keeps one per tenant, month and
 * threshold, whichever worker gets there first) and returns what to mail: the highest
 * threshold this call recorded, so a tenant that went past 80 and 100 in one batch gets
 * one mail saying 100 %.
 */
async function recordNotices(pool: Pool, tenantId: string, month: UsageMonth, due: DueRow[]): Promise<RecordedNotice | null> {
  return withTenant(pool, { tenantId, role: 'billing' }, async (client) => {
    const tenant = await client.query<{ name: string; status: string }>('SELECT name, status FROM tenants WHERE id = $1', [tenantId]);
    const row = tenant.rows[0];
    if (!row || row.status === 'deleted') return null;
    const inserted = await client.query<{ threshold_percent: 80 | 100; used: string; quota: string }>(
      `INSERT INTO quota_notices (tenant_id, metric, month, threshold_percent, used, quota)
       SELECT $1, $2, $3::date, d.threshold_percent, d.used, d.quota
       FROM unnest($4::integer[], $5::bigint[], $6::bigint[]) AS d(threshold_percent, used, quota)
       ON CONFLICT DO NOTHING
       RETURNING threshold_percent, used::text, quota::text`,
      [tenantId, API_REQUESTS_METRIC, `${formatUsageMonth(month)}-01`, due.map((d) => d.threshold_percent), due.map((d) => d.used), due.map((d) => d.quota)],
    );
    const highest = inserted.rows.sort((a, b) => b.threshold_percent - a.threshold_percent)[0];
    if (!highest) return null;
    const owners = await client.query<{ email: string }>(
      `SELECT u.email FROM tenant_members m JOIN users u ON u.id = m.user_id
       WHERE m.tenant_id = $1 AND m.role = 'owner' ORDER BY u.email`,
      [tenantId],
    );
    return {
      tenantName: row.name,
      owners: owners.rows.map((owner) => owner.email),
      thresholdPercent: highest.threshold_percent,
      used: Number(highest.used),
      quota: Number(highest.quota),
    };
  });
}

/**
 * Mails the owners of every tenant (of `tenantIds`, when given) past 80 % or 100 % of the month's API quota, once per
 * month and threshold: the notice is committed first, the mail goes after, so two workers
 * never both mail; a mail that fails is logged, not retried (the notice stays recorded).
 * Returns how many notices were mailed.
 */
export async function sendQuotaNotices(
  deps: { pool: Pool; mailer: Mailer; logger: Logger },
  month: UsageMonth,
  tenantIds: readonly string[] | null = null,
): Promise<number> {
  const { rows } = await deps.pool.query<DueRow>('SELECT tenant_id, threshold_percent, used::text, quota::text FROM app.quota_notices_due($1::date, $2::uuid[])', [
    `${formatUsageMonth(month)}-01`,
    tenantIds,
  ]);
  const byTenant = new Map<string, DueRow[]>();
  for (const row of rows) byTenant.set(row.tenant_id, [...(byTenant.get(row.tenant_id) ?? []), row]);
  let mailed = 0;
  for (const [tenantId, due] of byTenant) {
    const notice = await recordNotices(deps.pool, tenantId, month, due).catch((error: unknown) => {
      deps.logger.error({ err: error, tenantId }, 'quota notice not recorded');
      return null;
    });
    if (!notice) continue;
    const mail = quotaMail(notice.tenantName, { thresholdPercent: notice.thresholdPercent, used: notice.used, quota: notice.quota, resetsAt: usageMonthEnd(month) });
    for (const to of notice.owners) {
      await deps.mailer
        .send({ to, ...mail })
        .catch((error: unknown) => deps.logger.error({ err: error, tenantId, threshold: notice.thresholdPercent }, 'quota mail not sent'));
    }
    deps.logger.info({ tenantId, month: formatUsageMonth(month), threshold: notice.thresholdPercent, owners: notice.owners.length }, 'quota notice sent');
    mailed += 1;
  }
  return mailed;
}
