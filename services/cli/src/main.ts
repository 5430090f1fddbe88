import { Command, CommanderError } from 'commander';
import { MigrationError } from '../../shared/src/db/migrations.js';
import { auditCommand } from './commands/audit.js';
import { billingCommand } from './commands/billing.js';
import { dbCommand } from './commands/db.js';
import { domainCommand } from './commands/domain.js';
import { memberCommand } from './commands/member.js';
import { planCommand } from './commands/plan.js';
import { settingCommand } from './commands/setting.js';
import { tenantCommand } from './commands/tenant.js';
import { userCommand } from './commands/user.js';
import { closeConnections } from './context.js';
import { CliError, explainDatabaseError, isPgError } from './errors.js';

export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

export function buildProgram(): Command {
  const program = new Command('tenantry')
    .description('Operate Tenantry: tenants, members, domains, settings, users, plans, billing and the database')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const build of [tenantCommand, memberCommand, domainCommand, settingCommand, userCommand, planCommand, billingCommand, auditCommand, dbCommand]) {
    program.addCommand(build().exitOverride().showHelpAfterError('(run with --help for usage)'));
  }
  // Subcommands at every depth (tenant branding set, user staff grant) throw too, rather than exit.
  const throwInsteadOfExit = (command: Command): void => {
    for (const child of command.commands) throwInsteadOfExit(child.exitOverride());
  };
  throwInsteadOfExit(program);
  return program;
}

function describe(error: unknown): string {
  if (error instanceof CliError) return error.message;
  if (error instanceof MigrationError) return `${error.message}`;
  if (isPgError(error)) return explainDatabaseError(error).message;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND') {
    return `cannot connect (${(error as Error).message}) — check PLATFORM_ADMIN_DATABASE_URL, REDIS_URL and S3_ENDPOINT, or start the stack with \`npm run stack:up\``;
  }
  return `${(error as Error).message ?? String(error)}`;
}

export async function run(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the problem (or the help / version).
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    process.stderr.write(`tenantry: ${describe(error)}\n`);
    if (process.env.TENANTRY_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    return error instanceof CliError ? error.exitCode : EXIT.failure;
  } finally {
    await closeConnections();
  }
}

const exitCode = await run(process.argv);
// Flush stdout before exiting (a pipe may still hold output).
process.stdout.write('', () => process.exit(exitCode));
