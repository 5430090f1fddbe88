import { z } from 'zod';
import { withTenant } from '../../../shared/src/db/tenant-context.js';
import { isUsageMonth, monthlyUsageReport, parseUsageMonth, usageMonthOf } from '../../../shared/src/usage.js';
import { billingCaller } from '../access.js';
import { defineOperation } from '../http.js';

const quantity = z.number().int().nullable().describe('null: unlimited');

export const usageReportSchema = z.object({
  tenant_id: z.string().uuid(),
  month: z.string().describe('YYYY-MM (UTC)'),
  metrics: z.array(
    z.object({
      metric: z.string(),
      kind: z.enum(['sum', 'sample']).describe('sum: the month total; sample: the latest sample'),
      limit: quantity,
      used: z.number().int(),
      remaining: quantity,
      days: z.array(z.object({ date: z.string().describe('YYYY-MM-DD (UTC)'), quantity: z.number().int() })),
    }),
  ),
});

export const getUsage = defineOperation({
  method: 'get',
  path: '/billing/usage',
  summary: "The tenant's usage for a month (billing:read): each metric's limit, used, remaining and per-day figures",
  tag: 'billing',
  auth: 'token',
  query: z.object({
    month: z
      .string()
      .refine(isUsageMonth, 'month must be YYYY-MM with a month from 01 to 12')
      .optional()
      .describe('YYYY-MM (UTC); default: the current month'),
  }),
  responses: {
    200: { description: 'the month\'s usage', schema: usageReportSchema },
    403: { description: 'missing billing:read, or another tenant' },
    422: { description: 'month is not YYYY-MM' },
  },
  async handler(context) {
    const caller = await billingCaller(context, 'read', { whileBillingSuspended: false });
    const month = context.query.month ? parseUsageMonth(context.query.month) : usageMonthOf(new Date());
    // Through the tenant context: row-level security shows only the caller's tenant.
    const report = await withTenant(context.deps.pool, { tenantId: caller.tenantId, userId: caller.userId, role: caller.member.role }, (client) =>
      monthlyUsageReport(client, caller.tenantId, month),
    );
    return { body: report satisfies z.infer<typeof usageReportSchema> };
  },
});
