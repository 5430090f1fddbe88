import { Command, Option } from 'commander';
import {
  humanBytes,
  LIMIT_COLUMNS,
  LIMIT_SPECS,
  parseLimitValue,
  PLAN_LIMIT,
  setTenantLimits,
  showTenantLimits,
  type LimitChanges,
  type LimitColumn,
  type LimitsChange,
  type TenantLimits,
} from '../limits.js';
import { printJson, printTable, say, type JsonOption } from '../output.js';

const shown = (column: LimitColumn, value: number | null): string => {
  if (value === null) return 'unlimited';
  return column === 'max_storage_bytes' ? `${value} (${humanBytes(value)})` : String(value);
};

const describeOverride = (column: LimitColumn, value: number | null): string => (value === null ? `the plan's` : shown(column, value));

function printLimits(limits: TenantLimits): void {
  say(`limits of tenant ${limits.slug} (plan ${limits.plan_id}):`);
  printTable<LimitColumn>(
    [
      ['limit', (column) => LIMIT_SPECS[column].label],
      ['in force', (column) => shown(column, limits.limits[column].in_force)],
      ['override', (column) => (limits.limits[column].override === null ? '-' : shown(column, limits.limits[column].override))],
      ['plan', (column) => shown(column, limits.limits[column].plan)],
    ],
    [...LIMIT_COLUMNS],
  );
}

function printChange(change: LimitsChange): void {
  if (!change.changed) say(`tenant ${change.slug}: the overrides were already as asked — nothing changed`);
  for (const [column, { before, after }] of Object.entries(change.changes) as Array<[LimitColumn, { before: number | null; after: number | null }]>) {
    say(`tenant ${change.slug}: ${LIMIT_SPECS[column].label} ${describeOverride(column, before)} → ${describeOverride(column, after)}`);
  }
  if (change.changed) say('(audited, edges purged: the edges apply it within a second)');
  printLimits(change);
}

/** `tenant limits …`: per-tenant overrides of the plan's limits (tenants.max_*), audited. */
export function limitsCommand(): Command {
  const limits = new Command('limits').description(
    `a tenant's limits: the plan's, or a per-tenant override (set one back to the plan's with '${PLAN_LIMIT}')`,
  );

  limits
    .command('show')
    .description('the limits in force, each with its override and the plan\'s value')
    .argument('<tenant>', 'slug or id')
    .option('--json', 'print JSON')
    .action(async (reference: string, options: JsonOption) => {
      const result = await showTenantLimits(reference);
      if (options.json) return printJson(result);
      printLimits(result);
    });

  limits
    .command('set')
    .description(
      `override a tenant's limits (audited with the reason; the edges apply the monthly quota within a second). ` +
        `'${PLAN_LIMIT}' removes an override: the plan's limit applies again`,
    )
    .argument('<tenant>', 'slug or id')
    .addOption(new Option('--api-requests-month <n>', `monthly API requests (or '${PLAN_LIMIT}')`))
    .addOption(new Option('--users <n>', `members (or '${PLAN_LIMIT}')`))
    .addOption(new Option('--storage <bytes>', `stored bytes, or with a unit: 500MB, 10GiB (or '${PLAN_LIMIT}')`))
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
An override replaces the plan's limit for this tenant only, whatever plan it moves to; with
'${PLAN_LIMIT}' the plan's limit applies again. Lowering --users below the current members
removes nobody: new members are refused until the count is under the limit.`,
    )
    .action(
      async (
        reference: string,
        options: { apiRequestsMonth?: string; users?: string; storage?: string; reason: string } & JsonOption,
      ) => {
        const typed: Record<LimitColumn, string | undefined> = {
          max_api_requests_month: options.apiRequestsMonth,
          max_users: options.users,
          max_storage_bytes: options.storage,
        };
        const changes: LimitChanges = {};
        for (const column of LIMIT_COLUMNS) {
          const text = typed[column];
          if (text !== undefined) changes[column] = parseLimitValue(column, text);
        }
        const result = await setTenantLimits(reference, changes, options.reason);
        if (options.json) return printJson(result);
        printChange(result);
      },
    );

  return limits;
}
