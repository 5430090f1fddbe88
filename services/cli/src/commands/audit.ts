import { Command, InvalidArgumentError } from 'commander';
import { listAudit, type AuditEntry } from '../audit.js';
import { CliError } from '../errors.js';
import { printJson, printTable, type JsonOption } from '../output.js';

function positiveCount(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > 10_000) throw new InvalidArgumentError('give a whole number from 1 to 10000');
  return value;
}

export function auditCommand(): Command {
  return new Command('audit')
    .description("a tenant's audit log, newest first (or the platform's: user creation, staff changes, purges)")
    .argument('[tenant]', 'slug or id')
    .option('--platform', 'the entries without a tenant instead of a tenant')
    .option('--since <when>', 'only entries since a duration ago (30m, 24h, 7d, 2w) or a date (2026-11-30, 2026-11-30T09:00:00Z)')
    .option('--action <action>', 'only this action (tenant_members.insert) or those under a prefix (tenant_members)')
    .option('--limit <count>', 'at most this many entries', positiveCount, 100)
    .option('--json', 'print JSON (before and after included)')
    .action(async (tenant: string | undefined, options: { platform?: boolean; since?: string; action?: string; limit: number } & JsonOption) => {
      if ((tenant === undefined) === !options.platform) {
        throw new CliError('give a tenant (slug or id) or --platform, not both — e.g. `tenantry audit acme --since 24h`', 2);
      }
      const entries = await listAudit({ tenant, since: options.since, action: options.action, limit: options.limit });
      if (options.json) return printJson(entries);
      printTable<AuditEntry>(
        [
          ['time', (row) => row.created_at],
          ['actor', (row) => row.actor],
          ['action', (row) => row.action],
          ['target', (row) => (row.target_id === null ? row.target_type : `${row.target_type}:${row.target_id}`)],
          ['reason', (row) => row.reason ?? ''],
        ],
        entries,
        'no audit entries match',
      );
    });
}
