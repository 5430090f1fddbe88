import { z } from 'zod';
import { billingCaller } from '../access.js';
import { defineOperation } from '../http.js';

const limit = z.number().int().nullable().describe('null: unlimited');

export const entitlementsSchema = z.object({
  plan: z.string(),
  /** The plan's features with the tenant's overrides on top. */
  features: z.record(z.string(), z.unknown()),
  limits: z.object({ users: limit, storageBytes: limit, apiRequestsMonth: limit, rateLimitRps: limit }),
});

interface EntitlementsRow {
  plan_id: string;
  features: Record<string, unknown>;
  max_users: number | null;
  // bigint: node-postgres hands them over as strings.
  max_storage_bytes: string | null;
  max_api_requests_month: string | null;
  rate_limit_rps: number | null;
}

const count = (value: string | number | null) => (value === null ? null : Number(value));

export const getEntitlements = defineOperation({
  method: 'get',
  path: '/billing/entitlements',
  summary: 'The features and limits in force (billing:read): the same answer as app.tenant_entitlements in SQL',
  tag: 'billing',
  auth: 'token',
  responses: {
    200: { description: 'features and limits in force', schema: entitlementsSchema },
    403: { description: 'missing billing:read, or another tenant' },
  },
  async handler(context) {
    const caller = await billingCaller(context, 'read', { whileBillingSuspended: false });
    const { rows } = await context.deps.pool.query<EntitlementsRow>({
      name: 'billing-entitlements',
      text: 'SELECT plan_id, features, max_users, max_storage_bytes, max_api_requests_month, rate_limit_rps FROM app.tenant_entitlements($1)',
      values: [caller.tenantId],
    });
    const row = rows[0]!;
    return {
      body: {
        plan: row.plan_id,
        features: row.features,
        limits: {
          users: count(row.max_users),
          storageBytes: count(row.max_storage_bytes),
          apiRequestsMonth: count(row.max_api_requests_month),
          rateLimitRps: count(row.rate_limit_rps),
        },
      } satisfies z.infer<typeof entitlementsSchema>,
    };
  },
});
