import type { ClientBase, Pool, PoolClient } from 'pg';

export type TransactionSettings = Record<string, string | undefined>;

/** What quoting needs of a client: pg's escape functions, nothing of its connection. */
export type Quoting = Pick<ClientBase, 'escapeIdentifier' | 'escapeLiteral'>;

/**
 * BEGIN and the transaction's settings as one statement string, sent in one round trip.
 * `SET LOCAL` is what Hasura sends for `hasura.user`: a utility statement, so it costs no
 * plan and returns no row, and like set_config(…, true) it ends with the transaction.
 * pg's escapeIdentifier and escapeLiteral quote names and values (any text is safe there).
 */
export function beginStatement(client: Quoting, settings: TransactionSettings): string {
  const statements = ['BEGIN'];
  for (const [name, value] of Object.entries(settings)) {
    if (value !== undefined) statements.push(`SET LOCAL ${client.escapeIdentifier(name)} = ${client.escapeLiteral(value)}`);
  }
  return statements.join('; ');
}

/**
 * Runs `work` in one transaction whose settings end with it, so they never leak to the
 * next user of the pooled connection: BEGIN with the settings, work, COMMIT — or ROLLBACK
 * when work (or a deferred constraint at COMMIT) throws.
 */
export async function inTransaction<T>(pool: Pool, settings: TransactionSettings, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(beginStatement(client, settings));
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
