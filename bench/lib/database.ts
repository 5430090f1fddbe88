import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import pg from 'pg';
import { startPostgres, stopProcess } from '../../scripts/native/services.js';
import { bootstrapDatabase, LOGIN_ROLES, roleUrl, type LoginRole } from '../../services/shared/src/db/bootstrap.js';
import { migrate } from '../../services/shared/src/db/migrations.js';

const MIGRATIONS_DIR = path.resolve(import.meta.dirname, '../../hasura/migrations/default');

/** A migrated database of its own for one benchmark run. */
export interface BenchDatabase {
  /** Where the server came from: DATABASE_URL, or a native server started for this run. */
  source: 'env' | 'native';
  /** A superuser on the benchmark database: loads data, vacuums, checkpoints. */
  superuserUrl: string;
  urls: Record<LoginRole, string>;
  /** Drops the database, or stops the server and removes its directory; never throws. */
  stop(): Promise<void>;
}

/**
 * Uses the superuser DATABASE_URL when set, else starts a throwaway native Postgres (no
 * fsync: the benchmark measures queries, not durability), then bootstraps the roles into
 * a fresh database and migrates it. Note that bootstrap re-sets the roles' passwords on a
 * shared server, as the test setup does.
 */
export async function startBenchDatabase(env: NodeJS.ProcessEnv = process.env): Promise<BenchDatabase> {
  const cleanups: Array<() => Promise<unknown>> = [];
  let stopping: Promise<void> | undefined;
  // Idempotent: the signal handler and the caller's finally may both call it.
  const stop = () =>
    (stopping ??= (async () => {
      for (const cleanup of cleanups.reverse()) await cleanup().catch((error: Error) => console.error(`cleanup failed: ${error.message}`));
    })());
  // Ctrl-C or a CI timeout reaches the non-detached server too, which then shuts down; without
  // this handler Node would die before any finally and leave the temporary directory behind.
  // Once clean, the signal is raised again: a caller's own handler still runs, and without
  // one the process ends by the signal as it would have.
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`${signal}: cleaning up the benchmark database`);
    void stop().finally(() => process.kill(process.pid, signal));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  cleanups.push(async () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  });
  try {
    let serverUrl = env.DATABASE_URL;
    if (!serverUrl) {
      const root = await mkdtemp(path.join(os.tmpdir(), 'tenantry-bench-'));
      // Postgres runs as its own system user when we are root; it must reach its directory.
      await chmod(root, 0o711);
      cleanups.push(() => rm(root, { recursive: true, force: true }));
      const postgres = await startPostgres({
        port: await getPort(),
        dataDir: path.join(root, 'postgres'),
        logFile: path.join(root, 'postgres.log'),
        detached: false,
        durable: false,
      });
      // A run that dies mid-way must not leave the server behind.
      const kill = () => postgres.child?.kill('SIGKILL');
      process.once('exit', kill);
      cleanups.push(async () => {
        await stopProcess(postgres.pid);
        process.off('exit', kill);
      });
      serverUrl = postgres.adminUrl;
    }

    const database = `tenantry_bench_${randomBytes(6).toString('hex')}`;
    const passwords = Object.fromEntries(LOGIN_ROLES.map((role) => [role, randomBytes(18).toString('base64url')])) as Record<LoginRole, string>;
    await bootstrapDatabase({ adminUrl: serverUrl, database, passwords });
    if (env.DATABASE_URL) cleanups.push(() => dropDatabase(serverUrl, database));
    const urls = Object.fromEntries(LOGIN_ROLES.map((role) => [role, roleUrl(serverUrl, role, passwords[role], database)])) as Record<LoginRole, string>;
    await migrate({ databaseUrl: urls.tenantry_owner, directory: MIGRATIONS_DIR });

    const superuserUrl = new URL(serverUrl);
    superuserUrl.pathname = `/${database}`;
    return { source: env.DATABASE_URL ? 'env' : 'native', superuserUrl: superuserUrl.toString(), urls, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function dropDatabase(serverUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(database)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
