import type { Pool, PoolClient } from 'pg';

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

/**
 * Runs `work` in one transaction scoped to a tenant: BEGIN, set `hasura.user` locally
 * (so it ends with the transaction and never leaks to the next user of the pooled
 * connection), work, COMMIT — or ROLLBACK when work throws.
 */
export async function withTenant<T>(
  pool: Pool,
  context: TenantContext,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('hasura.user', $1, true)", [hasuraSessionJson(context)]);
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
