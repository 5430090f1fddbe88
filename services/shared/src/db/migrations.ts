import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

/** Hasura's layout: <dir>/<version>_<name>/up.sql and down.sql, version a millisecond timestamp. */
const MIGRATION_DIRECTORY = /^(\d+)_([A-Za-z0-9_-]+)$/;
/** Any constant works; it only has to be the same for every runner of this project. */
const MIGRATION_LOCK_KEY = 7_316_284_901;
const LEDGER = 'tenantry.schema_migrations';

export interface Migration {
  version: bigint;
  name: string;
  directory: string;
  upSql: string;
  downSql: string | null;
  checksum: string;
}

export interface AppliedMigration {
  version: bigint;
  name: string;
  checksum: string;
  appliedAt: Date;
  executionMs: number;
}

export type MigrationState = 'applied' | 'pending' | 'edited' | 'missing';

export interface MigrationStatus {
  version: bigint;
  name: string;
  state: MigrationState;
  appliedAt: Date | null;
}

export class MigrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

export function checksumOf(sql: string): string {
  // Line endings differ between checkouts; the SQL does not.
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n')).digest('hex');
}

async function readOptional(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export async function loadMigrations(root: string): Promise<Migration[]> {
  const entries = await readdir(root, { withFileTypes: true });
  const migrations: Migration[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const match = MIGRATION_DIRECTORY.exec(entry.name);
    if (!match) {
      throw new MigrationError(`${path.join(root, entry.name)} is not named <version>_<name>`);
    }
    const directory = path.join(root, entry.name);
    const upSql = await readOptional(path.join(directory, 'up.sql'));
    if (upSql === null) throw new MigrationError(`${directory} has no up.sql`);
    migrations.push({
      version: BigInt(match[1]!),
      name: match[2]!,
      directory,
      upSql,
      downSql: await readOptional(path.join(directory, 'down.sql')),
      checksum: checksumOf(upSql),
    });
  }
  migrations.sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
  for (let index = 1; index < migrations.length; index += 1) {
    if (migrations[index]!.version === migrations[index - 1]!.version) {
      throw new MigrationError(`two migrations share version ${migrations[index]!.version}`);
    }
  }
  return migrations;
}

async function ensureLedger(client: pg.ClientBase): Promise<void> {
  await client.query(`CREATE SCHEMA IF NOT EXISTS tenantry`);
  await client.query(`
    CREATE TABLE IF NOT EXISTS ${LEDGER} (
      version bigint PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now(),
      execution_ms integer NOT NULL
    )`);
}

async function readLedger(client: pg.ClientBase): Promise<AppliedMigration[]> {
  const exists = await client.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [LEDGER]);
  if (!exists.rows[0]?.present) return [];
  const { rows } = await client.query<{
    version: string;
    name: string;
    checksum: string;
    applied_at: Date;
    execution_ms: number;
  }>(`SELECT version, name, checksum, applied_at, execution_ms FROM ${LEDGER} ORDER BY version`);
  return rows.map((row) => ({
    version: BigInt(row.version),
    name: row.name,
    checksum: row.checksum,
    appliedAt: row.applied_at,
    executionMs: row.execution_ms,
  }));
}

function compare(migrations: Migration[], applied: AppliedMigration[]): MigrationStatus[] {
  const byVersion = new Map(migrations.map((migration) => [migration.version, migration]));
  const rows: MigrationStatus[] = applied.map((entry) => {
    const file = byVersion.get(entry.version);
    const state: MigrationState = !file ? 'missing' : file.checksum === entry.checksum ? 'applied' : 'edited';
    return { version: entry.version, name: entry.name, state, appliedAt: entry.appliedAt };
  });
  const appliedVersions = new Set(applied.map((entry) => entry.version));
  for (const migration of migrations) {
    if (!appliedVersions.has(migration.version)) {
      rows.push({ version: migration.version, name: migration.name, state: 'pending', appliedAt: null });
    }
  }
  return rows.sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
}

function refuseDrift(rows: MigrationStatus[]): void {
  const drifted = rows.filter((row) => row.state === 'edited' || row.state === 'missing');
  if (drifted.length === 0) return;
  const list = drifted
    .map((row) => `${row.version}_${row.name} (${row.state === 'edited' ? 'edited after it was applied' : 'applied but its files are gone'})`)
    .join(', ');
  throw new MigrationError(
    `refusing to migrate: ${list}. Restore the applied files and put changes in a new migration.`,
  );
}

/** Holds the migration lock on one connection for the whole of `work`, so runners take turns. */
async function withMigrationLock<T>(databaseUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'tenantry-migrate' });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      return await work(client);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await client.end();
  }
}

async function inTransaction(client: pg.ClientBase, work: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    await work();
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}

export interface MigrateOptions {
  databaseUrl: string;
  directory: string;
  onApplied?: (migration: Migration, executionMs: number) => void;
}

/** Applies every pending migration in version order, each in its own transaction. */
export async function migrate({ databaseUrl, directory, onApplied }: MigrateOptions): Promise<Migration[]> {
  const migrations = await loadMigrations(directory);
  return withMigrationLock(databaseUrl, async (client) => {
    await ensureLedger(client);
    const rows = compare(migrations, await readLedger(client));
    refuseDrift(rows);
    const pending = new Set(rows.filter((row) => row.state === 'pending').map((row) => row.version));
    const applied: Migration[] = [];
    for (const migration of migrations.filter((candidate) => pending.has(candidate.version))) {
      const started = performance.now();
      await inTransaction(client, async () => {
        try {
          await client.query(migration.upSql);
        } catch (error) {
          throw new MigrationError(`${migration.version}_${migration.name} failed: ${(error as Error).message}`);
        }
        const executionMs = Math.round(performance.now() - started);
        await client.query(`INSERT INTO ${LEDGER} (version, name, checksum, execution_ms) VALUES ($1, $2, $3, $4)`, [
          migration.version.toString(),
          migration.name,
          migration.checksum,
          executionMs,
        ]);
      });
      applied.push(migration);
      onApplied?.(migration, Math.round(performance.now() - started));
    }
    return applied;
  });
}

export async function migrationStatus(databaseUrl: string, directory: string): Promise<MigrationStatus[]> {
  const migrations = await loadMigrations(directory);
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'tenantry-migrate' });
  await client.connect();
  try {
    return compare(migrations, await readLedger(client));
  } finally {
    await client.end();
  }
}

export interface RollbackOptions {
  databaseUrl: string;
  directory: string;
  steps: number;
  onReverted?: (migration: Migration) => void;
}

/** Reverts the newest `steps` applied migrations with their down.sql, newest first. */
export async function rollback({ databaseUrl, directory, steps, onReverted }: RollbackOptions): Promise<Migration[]> {
  if (!Number.isInteger(steps) || steps < 1) throw new MigrationError('steps must be a whole number of at least 1');
  const migrations = await loadMigrations(directory);
  const byVersion = new Map(migrations.map((migration) => [migration.version, migration]));
  return withMigrationLock(databaseUrl, async (client) => {
    const rows = compare(migrations, await readLedger(client));
    refuseDrift(rows);
    const targets = rows
      .filter((row) => row.state === 'applied')
      .reverse()
      .slice(0, steps)
      .map((row) => byVersion.get(row.version)!);
    const withoutDown = targets.filter((migration) => migration.downSql === null);
    if (withoutDown.length > 0) {
      throw new MigrationError(`cannot roll back ${withoutDown.map((m) => `${m.version}_${m.name}`).join(', ')}: no down.sql`);
    }
    const reverted: Migration[] = [];
    for (const migration of targets) {
      await inTransaction(client, async () => {
        await client.query(migration.downSql!);
        await client.query(`DELETE FROM ${LEDGER} WHERE version = $1`, [migration.version.toString()]);
      });
      reverted.push(migration);
      onReverted?.(migration);
    }
    return reverted;
  });
}
