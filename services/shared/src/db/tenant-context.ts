import type { Pool, PoolClient } from 'pg';
import { inTransaction } from './transaction.js';

/** The session a request runs as: the same variables Hasura sends, under the same names. */
export interface TenantContext {
  tenantId: string;
  userId?: string;
  role?: string;
}

/** The JSON value of `hasura.user` exactly as Hasura sets it: one object, lower-case keys. */
export function hasuraSessionJson(context: TenantContext): string {
  const session: Record<string, string> = {
    'x-hasura-role': context.role ?? 'member',
    'x-hasura-tenant-id': context.tenantId,
  };
  if (context.userId) session['x-hasura-user-id'] = context.userId;
  return JSON.stringify(session);
}

/** Runs `work` in one transaction scoped to a tenant, with `hasura.user` set as Hasura sets it. */
export function withTenant<T>(pool: Pool, context: TenantContext, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return inTransaction(pool, { 'hasura.user': hasuraSessionJson(context) }, work);
}
