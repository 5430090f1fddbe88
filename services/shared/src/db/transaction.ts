import type { ClientBase, Pool, PoolClient } from 'pg';
import { isDependencyUnavailable } from '../http/errors.js';

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
 *
 * While the client is checked out, its connection may break (a database restart,
 * pg_terminate_backend): node-postgres then emits 'error' on the client, which would end
 * the process if nobody listened, whatever pool it came from. The listener keeps the
 * error; the statement in flight fails with it, and the client is released with it so the
 * pool destroys the connection instead of handing it to the next request.
 */
export async function inTransaction<T>(pool: Pool, settings: TransactionSettings, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onConnectionError = (error: Error) => {
    broken = error;
  };
  client.on('error', onConnectionError);
  try {
    await client.query(beginStatement(client, settings));
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    // The connection itself failed (lost, or a statement unanswered past query_timeout): a
    // ROLLBACK would only wait on it again, and destroying the connection rolls back anyway.
    if (!broken && isDependencyUnavailable(error)) broken = error as Error;
    if (!broken) {
      // A ROLLBACK that fails leaves the session in an unknown state: never reuse it.
      await client.query('ROLLBACK').catch((rollbackError: Error) => {
        broken = rollbackError;
      });
    }
    throw error;
  } finally {
    client.off('error', onConnectionError);
    client.release(broken);
  }
}
