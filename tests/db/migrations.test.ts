import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { lintTenantIsolation } from '../../services/shared/src/db/isolation-lint.js';
import { migrate, MigrationError, migrationStatus, rollback } from '../../services/shared/src/db/migrations.js';
import { createScratchDatabase, services, type ScratchDatabase } from '../helpers/database.js';

let scratch: ScratchDatabase;
let directory: string;

async function writeMigration(version: string, name: string, up: string, down?: string) {
  const folder = path.join(directory, `${version}_${name}`);
  await mkdir(folder, { recursive: true });
  await writeFile(path.join(folder, 'up.sql'), up);
  if (down !== undefined) await writeFile(path.join(folder, 'down.sql'), down);
}

async function query<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: scratch.url('tenantry_owner') });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

const run = () => migrate({ databaseUrl: scratch.url('tenantry_owner'), directory });
const names = (migrations: { name: string }[]) => migrations.map((migration) => migration.name);

describe('migration runner', () => {
  beforeEach(async () => {
    scratch = await createScratchDatabase({ migrated: false });
    directory = await mkdtemp(path.join(os.tmpdir(), 'tenantry-migrations-'));
  });
  afterEach(async () => {
    await scratch.drop();
    await rm(directory, { recursive: true, force: true });
  });

  test('applies in numeric version order, not name order', async () => {
    // As strings "100" sorts before "20"; the insert fails unless the table exists first.
    await writeMigration('100', 'fill', 'INSERT INTO widgets VALUES (1);');
    await writeMigration('20', 'create', 'CREATE TABLE widgets (id int);');
    expect(names(await run())).toEqual(['create', 'fill']);
    expect(await query('SELECT id FROM widgets')).toEqual([{ id: 1 }]);
    const ledger = await query<{ version: string }>('SELECT version FROM tenantry.schema_migrations ORDER BY applied_at, version');
    expect(ledger.map((row) => row.version)).toEqual(['20', '100']);
  });

  test('is idempotent: a second run applies nothing', async () => {
    await writeMigration('1', 'create', 'CREATE TABLE widgets (id int);');
    expect(names(await run())).toEqual(['create']);
    expect(await run()).toEqual([]);
    await writeMigration('2', 'more', 'ALTER TABLE widgets ADD COLUMN name text;');
    expect(names(await run())).toEqual(['more']);
  });

  test('two runners started together apply each migration exactly once', async () => {
    await writeMigration('1', 'slow', 'SELECT pg_sleep(0.3); CREATE TABLE widgets (id int);');
    await writeMigration('2', 'fill', 'INSERT INTO widgets VALUES (1);');
    const [first, second] = await Promise.all([run(), run()]);
    expect([...names(first), ...names(second)].sort()).toEqual(['fill', 'slow']);
    expect(await query('SELECT id FROM widgets')).toEqual([{ id: 1 }]);
  });

  test('refuses to run when an applied file was edited, and applies nothing', async () => {
    await writeMigration('1', 'create', 'CREATE TABLE widgets (id int);');
    await run();
    await writeMigration('1', 'create', 'CREATE TABLE widgets (id bigint);');
    await writeMigration('2', 'pending', 'CREATE TABLE gadgets (id int);');
    await expect(run()).rejects.toThrow(MigrationError);
    await expect(run()).rejects.toThrow(/1_create \(edited after it was applied\)/);
    expect(await query("SELECT to_regclass('gadgets') AS present")).toEqual([{ present: null }]);
    const states = await migrationStatus(scratch.url('tenantry_owner'), directory);
    expect(states.map((row) => row.state)).toEqual(['edited', 'pending']);
  });

  test('refuses to run when an applied migration is gone', async () => {
    await writeMigration('1', 'create', 'CREATE TABLE widgets (id int);');
    await run();
    await rm(path.join(directory, '1_create'), { recursive: true });
    await expect(run()).rejects.toThrow(/applied but its files are gone/);
  });

  test('a failing migration leaves nothing behind and is not recorded', async () => {
    await writeMigration('1', 'broken', 'CREATE TABLE widgets (id int); INSERT INTO widgets VALUES (1); SELECT 1/0;');
    await expect(run()).rejects.toThrow(/1_broken failed: division by zero/);
    expect(await query("SELECT to_regclass('widgets') AS present")).toEqual([{ present: null }]);
    expect(await query('SELECT count(*)::int AS n FROM tenantry.schema_migrations')).toEqual([{ n: 0 }]);
  });

  test('rolls back the newest migrations with down.sql, then re-applies them', async () => {
    await writeMigration('1', 'create', 'CREATE TABLE widgets (id int);', 'DROP TABLE widgets;');
    await writeMigration('2', 'gadgets', 'CREATE TABLE gadgets (id int);', 'DROP TABLE gadgets;');
    await run();
    const reverted = await rollback({ databaseUrl: scratch.url('tenantry_owner'), directory, steps: 1 });
    expect(names(reverted)).toEqual(['gadgets']);
    expect(await query("SELECT to_regclass('gadgets') AS gadgets, to_regclass('widgets') AS widgets")).toEqual([
      { gadgets: null, widgets: 'widgets' },
    ]);
    expect(names(await run())).toEqual(['gadgets']);
  });

  test('refuses to roll back a migration without down.sql', async () => {
    await writeMigration('1', 'one_way', 'CREATE TABLE widgets (id int);');
    await run();
    await expect(rollback({ databaseUrl: scratch.url('tenantry_owner'), directory, steps: 1 })).rejects.toThrow(/no down\.sql/);
    expect(await query("SELECT to_regclass('widgets') AS present")).toEqual([{ present: 'widgets' }]);
  });

  test('refuses a folder that is not <version>_<name>', async () => {
    await mkdir(path.join(directory, 'create_widgets'));
    await expect(run()).rejects.toThrow(/is not named <version>_<name>/);
  });
});

describe('the project migrations', () => {
  test('go all the way down and up again, and stay isolated', async () => {
    const database = await createScratchDatabase({ migrated: true });
    const owner = database.url('tenantry_owner');
    const { migrationsDir } = services();
    try {
      const applied = await migrationStatus(owner, migrationsDir);
      expect(applied.every((row) => row.state === 'applied')).toBe(true);
      await rollback({ databaseUrl: owner, directory: migrationsDir, steps: applied.length });
      const client = new pg.Client({ connectionString: owner });
      await client.connect();
      try {
        const left = await client.query(
          "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'app') AND c.relkind IN ('r', 'v', 'S')",
        );
        expect(left.rows).toEqual([]);
        await migrate({ databaseUrl: owner, directory: migrationsDir });
        expect(await lintTenantIsolation(client)).toEqual([]);
      } finally {
        await client.end();
      }
    } finally {
      await database.drop();
    }
  });
});
