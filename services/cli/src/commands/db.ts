import { Command, InvalidArgumentError } from 'commander';
import pg from 'pg';
import { z } from 'zod';
import { ConfigError, postgresUrl, readConfig } from '../../../shared/src/config.js';
import { bootstrapDatabase, bootstrapHasuraMetadataDatabase, LOGIN_ROLES } from '../../../shared/src/db/bootstrap.js';
import { lintTenantIsolation } from '../../../shared/src/db/isolation-lint.js';
import { migrate, migrationStatus, rollback } from '../../../shared/src/db/migrations.js';
import { cliConfig, need } from '../config.js';
import { CliError } from '../errors.js';
import { printJson, printTable, say, type JsonOption } from '../output.js';

// The one migration CLI: `npm run db:*` runs these commands too, so the output and the
// --json fields (snake_case, as every other command prints them) exist once.

const label = (migration: { version: bigint; name: string }) => `${migration.version}_${migration.name}`;

const databaseName = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case identifier');
const rolePassword = z.string().min(12, 'must be at least 12 characters');

/** What bootstrap reads: a superuser URL and the login roles' passwords (only bootstrap ever sees them). */
const bootstrapSchema = z.object({
  DATABASE_ADMIN_URL: postgresUrl,
  POSTGRES_DB: databaseName.default('tenantry'),
  TENANTRY_OWNER_DB_PASSWORD: rolePassword,
  HASURA_DB_PASSWORD: rolePassword,
  APP_SERVICE_DB_PASSWORD: rolePassword,
  PLATFORM_ADMIN_DB_PASSWORD: rolePassword,
});

function bootstrapConfig(): z.infer<typeof bootstrapSchema> {
  cliConfig(); // loads the native stack's .stack/env when the environment names no database
  try {
    return readConfig(bootstrapSchema);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(`${error.problems.join('; ')} — fix the environment and retry`);
    throw error;
  }
}

const wholeNumber = (value: string) => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return parsed;
};

const identifier = (value: string) => {
  const parsed = databaseName.safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError('expected a lower-case identifier');
  return parsed.data;
};

export function dbCommand(): Command {
  const db = new Command('db').description('database roles and migrations (migrations run as the owner role in DATABASE_URL)');

  db.command('bootstrap')
    .description('create or update the login roles with their passwords and the database (DATABASE_ADMIN_URL: a superuser); safe to run again')
    .option('--hasura-metadata-db <name>', "also create Hasura's own catalog database, owned by hasura_app", identifier)
    .option('--json', 'print JSON')
    .action(async (options: JsonOption & { hasuraMetadataDb?: string }) => {
      const config = bootstrapConfig();
      await bootstrapDatabase({
        adminUrl: config.DATABASE_ADMIN_URL,
        database: config.POSTGRES_DB,
        passwords: {
          tenantry_owner: config.TENANTRY_OWNER_DB_PASSWORD,
          hasura_app: config.HASURA_DB_PASSWORD,
          app_service: config.APP_SERVICE_DB_PASSWORD,
          platform_admin: config.PLATFORM_ADMIN_DB_PASSWORD,
        },
      });
      if (options.hasuraMetadataDb) {
        await bootstrapHasuraMetadataDatabase({ adminUrl: config.DATABASE_ADMIN_URL, database: options.hasuraMetadataDb });
      }
      const result = { database: config.POSTGRES_DB, roles: [...LOGIN_ROLES], hasura_metadata_database: options.hasuraMetadataDb ?? null };
      if (options.json) return printJson(result);
      say(`roles and database "${result.database}" are in place`);
      if (result.hasura_metadata_database) say(`Hasura's metadata database "${result.hasura_metadata_database}" is in place (owner hasura_app)`);
    });

  db.command('migrate')
    .description('apply every pending migration in order, each in its own transaction')
    .option('--json', 'print JSON')
    .action(async (options: JsonOption) => {
      const applied = await migrate({
        databaseUrl: need('DATABASE_URL'),
        directory: cliConfig().MIGRATIONS_DIR,
        onApplied: (migration, ms) => {
          if (!options.json) say(`applied ${label(migration)} (${ms} ms)`);
        },
      });
      if (options.json) return printJson({ applied: applied.map((migration) => label(migration)) });
      say(applied.length === 0 ? 'database is up to date' : `${applied.length} migration(s) applied`);
    });

  db.command('status')
    .description('list migrations: applied, pending, edited after applying, or missing (exit 1 on edited or missing)')
    .option('--json', 'print JSON')
    .action(async (options: JsonOption) => {
      const rows = await migrationStatus(need('DATABASE_URL'), cliConfig().MIGRATIONS_DIR);
      const listed = rows.map((row) => ({ version: row.version.toString(), name: row.name, state: row.state, applied_at: row.appliedAt }));
      if (options.json) printJson(listed);
      else {
        printTable<(typeof listed)[number]>(
          [
            ['state', (row) => row.state],
            ['migration', (row) => `${row.version}_${row.name}`],
            ['applied', (row) => row.applied_at],
          ],
          listed,
          'no migrations found',
        );
      }
      if (rows.some((row) => row.state === 'edited' || row.state === 'missing')) process.exitCode = 1;
    });

  db.command('rollback')
    .alias('down')
    .description('revert the newest applied migrations with their down.sql')
    .option('--steps <n>', 'how many to revert', wholeNumber, 1)
    .option('--json', 'print JSON')
    .action(async (options: JsonOption & { steps: number }) => {
      const reverted = await rollback({
        databaseUrl: need('DATABASE_URL'),
        directory: cliConfig().MIGRATIONS_DIR,
        steps: options.steps,
        onReverted: (migration) => {
          if (!options.json) say(`reverted ${label(migration)}`);
        },
      });
      if (options.json) return printJson({ reverted: reverted.map((migration) => label(migration)) });
      if (reverted.length === 0) say('nothing to revert');
    });

  db.command('lint')
    .description('check that every tenant table is isolated by row-level security, and every function is private and definer-safe (exit 1 on a problem)')
    .option('--json', 'print JSON')
    .action(async (options: JsonOption) => {
      const client = new pg.Client({ connectionString: need('DATABASE_URL'), application_name: 'tenantry-db-lint' });
      await client.connect();
      try {
        const problems = await lintTenantIsolation(client);
        if (options.json) printJson({ problems });
        else {
          for (const problem of problems) say(`${problem.rule.padEnd(22)} ${problem.message}`);
          say(problems.length === 0 ? 'every tenant table is isolated; every function is private and definer-safe' : `${problems.length} problem(s)`);
        }
        if (problems.length > 0) process.exitCode = 1;
      } finally {
        await client.end();
      }
    });

  return db;
}
