import pg from 'pg';
import type { Logger } from '../logger.js';

export interface ServicePoolOptions {
  connectionString: string;
  applicationName: string;
  logger: Logger;
  max?: number;
  /**
   * How long a checkout may wait, for a new connection or for a busy pool to free one,
   * before it fails (and the request answers 503): never forever, even when the database
   * is away or every connection is stuck.
   */
  connectionTimeoutMillis?: number;
  /**
   * How long a statement may go unanswered before it fails (node-postgres's query_timeout):
   * a database that hangs (a frozen host, a network partition) keeps its TCP connections
   * open, and without this a request would wait on it forever. The failed client is
   * destroyed, not reused (pool.query and inTransaction release it with the error).
   * 0: no limit (the CLI's long statements).
   */
  queryTimeoutMillis?: number;
}

/**
 * A pg pool for a long-running service that survives its database going away.
 *
 * node-postgres emits 'error' on a client whose connection breaks (a restart,
 * pg_terminate_backend, a network cut). An idle client's error goes to the pool's 'error'
 * event; a checked-out client has no listener of the pool's while it is out, so an
 * unhandled 'error' would end the process. Every client therefore gets a listener of its
 * own when it is created (the pool's 'connect' event fires before anyone holds it): the
 * query in flight still fails, with the error, and the broken client leaves the pool when
 * it is released (pg-pool drops clients that are no longer queryable). The next checkout
 * opens a fresh connection, so the service serves again as soon as the database answers.
 */
export function createServicePool({
  connectionString,
  applicationName,
  logger,
  max = 10,
  connectionTimeoutMillis = 2_000,
  queryTimeoutMillis = 10_000,
}: ServicePoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    application_name: applicationName,
    max,
    connectionTimeoutMillis,
    query_timeout: queryTimeoutMillis,
    idleTimeoutMillis: 30_000,
    // Detects a peer that vanished without closing (a dead host), so the connection errors
    // instead of hanging until the kernel's default keepalive hours later.
    keepAlive: true,
  });
  pool.on('connect', (client) => {
    client.on('error', (error) => logger.warn({ err: error }, 'database connection lost'));
  });
  // The client's own listener above has logged the error already.
  pool.on('error', () => undefined);
  return pool;
}
