import { Command } from 'commander';
import { migrate, migrationStatus } from '../../../shared/src/db/migrations.js';
import { cliConfig, need } from '../config.js';
import { printJson, printTable, say, type JsonOption } from '../output.js';

const label = (migration: { version: bigint; name: string }) => `${migration.version}_${migration.name}`;

export function dbCommand(): Command {
  const db = new Command('db').description('database migrations, run as the owner role in DATABASE_URL');

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
    .description('list migrations: applied, pending, edited after applying, or missing')
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

  return db;
}
