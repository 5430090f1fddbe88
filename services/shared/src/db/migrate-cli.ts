import { existsSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import pg from 'pg';
import { z } from 'zod';
import { loadConfigOrExit, postgresUrl } from '../config.js';
import { lintTenantIsolation } from './isolation-lint.js';
import { migrate, MigrationError, migrationStatus, rollback } from './migrations.js';

const repositoryRoot = path.resolve(import.meta.dirname, '../../../..');
const stackEnv = path.join(repositoryRoot, '.stack/env');

// Without DATABASE_URL, work against the native stack (`npm run stack:up`) when it exists.
if (!process.env.DATABASE_URL && existsSync(stackEnv)) process.loadEnvFile(stackEnv);

const config = loadConfigOrExit(
  z.object({
    DATABASE_URL: postgresUrl,
    MIGRATIONS_DIR: z.string().default(path.join(repositoryRoot, 'hasura/migrations/default')),
  }),
);

const label = (migration: { version: bigint; name: string }) => `${migration.version}_${migration.name}`;

const positiveInteger = (value: string) => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return parsed;
};

const program = new Command('db')
  .description('Database migrations (Hasura layout under hasura/migrations/default), run as the owner role in DATABASE_URL')
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));

program
  .command('migrate')
  .description('apply every pending migration in order, each in its own transaction')
  .action(async () => {
    const applied = await migrate({
      databaseUrl: config.DATABASE_URL,
      directory: config.MIGRATIONS_DIR,
      onApplied: (migration, ms) => console.log(`applied ${label(migration)} (${ms} ms)`),
    });
    console.log(applied.length === 0 ? 'database is up to date' : `${applied.length} migration(s) applied`);
  });

program
  .command('status')
  .description('list migrations: applied, pending, edited after applying, or missing')
  .option('--json', 'print JSON')
  .action(async (options: { json?: boolean }) => {
    const rows = await migrationStatus(config.DATABASE_URL, config.MIGRATIONS_DIR);
    if (options.json) {
      console.log(JSON.stringify(rows.map((row) => ({ ...row, version: row.version.toString() })), null, 2));
      return;
    }
    for (const row of rows) {
      console.log(`${row.state.padEnd(8)} ${label(row)}${row.appliedAt ? `  ${row.appliedAt.toISOString()}` : ''}`);
    }
    if (rows.some((row) => row.state === 'edited' || row.state === 'missing')) process.exitCode = 1;
  });

program
  .command('down')
  .description('revert the newest applied migrations with their down.sql')
  .option('--steps <n>', 'how many to revert', positiveInteger, 1)
  .action(async (options: { steps: number }) => {
    await rollback({
      databaseUrl: config.DATABASE_URL,
      directory: config.MIGRATIONS_DIR,
      steps: options.steps,
      onReverted: (migration) => console.log(`reverted ${label(migration)}`),
    });
  });

program
  .command('lint')
  .description('check that every tenant table is isolated by row-level security, and every function is private and definer-safe')
  .action(async () => {
    const client = new pg.Client({ connectionString: config.DATABASE_URL });
    await client.connect();
    try {
      const problems = await lintTenantIsolation(client);
      for (const problem of problems) console.log(`${problem.rule.padEnd(22)} ${problem.message}`);
      console.log(problems.length === 0 ? 'every tenant table is isolated; every function is private and definer-safe' : `${problems.length} problem(s)`);
      if (problems.length > 0) process.exitCode = 1;
    } finally {
      await client.end();
    }
  });

program.parseAsync().catch((error: unknown) => {
  const message = error instanceof MigrationError ? error.message : `${(error as Error).message}`;
  console.error(`db: ${message}`);
  process.exit(1);
});
