import { createInterface } from 'node:readline/promises';
import { Command, Option } from 'commander';
import { cliConfig } from '../config.js';
import { CliError } from '../errors.js';
import { printFields, printJson, printTable, say, type JsonOption } from '../output.js';
import { brandingCommand } from './branding.js';
import { limitsCommand } from './limits.js';
import { usageCommand } from './usage.js';
import { requireKnownPlan } from '../plans.js';
import { purgeExpired, purgeTenant, type PurgeReport } from '../purge.js';
import {
  createTenant,
  findTenant,
  listTenants,
  restoreTenant,
  setTenantStatus,
  showTenant,
  softDeleteTenant,
  tenantStats,
  type TenantListItem,
  type TenantRow,
} from '../tenants.js';
import { exportTenant, importTenant, type ImportResult } from '../transfer.js';

const tenantFields = (tenant: TenantRow): Array<[string, unknown]> => [
  ['id', tenant.id],
  ['slug', tenant.slug],
  ['name', tenant.name],
  ['status', tenant.status],
  ['plan', tenant.plan_id],
  ['created', tenant.created_at],
  ...(tenant.suspended_at ? ([['suspended', tenant.suspended_at]] as Array<[string, unknown]>) : []),
  ...(tenant.suspension_reason ? ([['reason', tenant.suspension_reason]] as Array<[string, unknown]>) : []),
  ...(tenant.deleted_at ? ([['deleted', tenant.deleted_at]] as Array<[string, unknown]>) : []),
  ...(tenant.purge_after ? ([['purge after', tenant.purge_after]] as Array<[string, unknown]>) : []),
];

function printPurge(report: PurgeReport): void {
  const rows = Object.values(report.rows).reduce((sum, count) => sum + count, 0);
  say(
    `purged tenant ${report.slug} (${report.tenant_id}): ${rows} rows, ${report.redis_keys} Redis keys, ${report.objects} objects` +
      `${report.object_versions > report.objects ? ` (${report.object_versions} versions)` : ''}${report.bucket_removed ? ', bucket removed' : ''}, Redis user removed`,
  );
}

function printImport(result: ImportResult): void {
  const rows = Object.values(result.rows).reduce((sum, count) => sum + count, 0);
  say(`imported ${result.source.slug} as tenant ${result.slug} (${result.tenant_id}) on plan ${result.plan_id}: ${rows} rows, ${result.objects} objects`);
  say(`owner: ${result.owner.email} (--owner), the only member`);
  if (result.limits_from_archive) say("limits: the archive's per-tenant overrides (--keep-limits)");
  if (result.archived_limits_ignored) say("limits: the plan's; the archive's per-tenant overrides were ignored (--keep-limits takes them)");
  if (result.domains_unverified.length > 0) {
    say(`domains, unverified until checked again: ${result.domains_unverified.join(', ')} — run \`tenantry domain verify ${result.slug} DOMAIN\` for each`);
  }
  const skipped = [
    result.not_imported.api_keys > 0 ? `${result.not_imported.api_keys} API key(s): create new ones` : '',
    result.not_imported.tenant_subscriptions > 0 ? `${result.not_imported.tenant_subscriptions} billing subscription(s): set billing up again` : '',
  ].filter(Boolean);
  if (skipped.length > 0) say(`not imported: ${skipped.join('; ')}`);
  if (result.invitations.length === 0) return;
  say(
    `invited ${result.invitations.length} member(s) with their archived roles. The CLI sends no mail: this is the only time these ` +
      `${result.invitations[0]!.link ? 'links are' : 'tokens are'} shown — hand each to its invitee${result.invitations[0]!.link ? '' : ' (they accept with POST /auth/invitations/accept {"token": …}; --public-url prints links)'}:`,
  );
  for (const invitation of result.invitations) say(`  ${invitation.email}  ${invitation.role}  ${invitation.link ?? invitation.token}`);
}

/** Asks for the slug on a terminal; without one, only --yes lets a delete through. */
async function confirmDelete(slug: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw new CliError(`refusing to delete tenant '${slug}' without confirmation — pass --yes when not at a terminal`);
  }
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await prompt.question(`type the slug (${slug}) to delete this tenant: `);
    if (answer.trim() !== slug) throw new CliError(`'${answer.trim()}' is not '${slug}': nothing deleted — run the command again to retry`);
  } finally {
    prompt.close();
  }
}

export function tenantCommand(): Command {
  const tenant = new Command('tenant').description('create, inspect, suspend, delete, export and import tenants');

  tenant
    .command('create')
    .description('create a tenant and its owner (slug made from the name unless --slug), its bucket (STORAGE_LAYOUT=bucket) and its Redis ACL user')
    .argument('<name>', 'display name')
    .option('--slug <slug>', 'URL-safe identifier: 3–63 of a-z, 0-9 and -')
    .option('--plan <plan>', 'plan id (free, starter, pro, enterprise)', 'free')
    .requiredOption(
      '--owner <user>',
      'the owner: an existing user (id or email), or an email that is mailed an owner invitation (needs SMTP_URL and PUBLIC_URL)',
    )
    .option('--json', 'print JSON')
    .action(async (name: string, options: { slug?: string; plan: string; owner: string } & JsonOption) => {
      const created = await createTenant({ name, slug: options.slug, plan: options.plan, owner: options.owner });
      if (options.json) return printJson(created);
      say(`created tenant ${created.slug} (${created.id}) on plan ${created.plan_id}`);
      if (created.owner_invitation) {
        say(`mailed an owner invitation to ${created.owner_invitation.email} (valid until ${created.owner_invitation.expires_at.toISOString()})`);
      }
    });

  tenant
    .command('list')
    .description('list tenants')
    .addOption(new Option('--status <status>', 'only this status').choices(['active', 'suspended', 'deleted']))
    .option('--plan <plan>', 'only this plan (free, starter, pro, enterprise: the plans table)')
    .option('--json', 'print JSON')
    .action(async (options: { status?: string; plan?: string } & JsonOption) => {
      if (options.plan !== undefined) await requireKnownPlan(options.plan);
      const rows = await listTenants(options);
      if (options.json) return printJson(rows);
      printTable<TenantListItem>(
        [
          ['slug', (row) => row.slug],
          ['name', (row) => row.name],
          ['status', (row) => row.status],
          ['plan', (row) => row.plan_id],
          ['members', (row) => row.member_count],
          ['created', (row) => row.created_at],
          ['id', (row) => row.id],
        ],
        rows,
        'no tenants — create one with `tenantry tenant create NAME`',
      );
    });

  tenant
    .command('show')
    .description('show a tenant: members, limits, usage this month, domains')
    .argument('<tenant>', 'slug or id')
    .option('--json', 'print JSON')
    .action(async (reference: string, options: JsonOption) => {
      const details = await showTenant(reference);
      if (options.json) return printJson(details);
      const limit = (value: number | null) => (value === null ? 'unlimited' : value);
      printFields([
        ...tenantFields(details),
        ['members', `${details.member_count} of ${limit(details.limits.max_users)}`],
        ['storage limit', limit(details.limits.max_storage_bytes)],
        ['api requests/month', limit(details.limits.max_api_requests_month)],
        ['rate limit rps', details.limits.rate_limit_rps],
        [
          'usage this month',
          Object.keys(details.usage_this_month).length === 0
            ? 'none'
            : Object.entries(details.usage_this_month)
                .map(([metric, quantity]) => `${metric}=${quantity}`)
                .join(', '),
        ],
        [
          'domains',
          details.domains.length === 0
            ? 'none'
            : details.domains
                .map((d) => `${d.domain}${d.is_primary ? ' (primary)' : ''}${d.verified ? '' : ' (unverified)'}`)
                .join(', '),
        ],
      ]);
    });

  tenant
    .command('suspend')
    .description(
      "suspend a tenant: the edges refuse it within a second, its Redis user is turned off (its connections end at once), the storage service issues it no S3 credentials (those issued expire within 15 minutes); data stays",
    )
    .argument('<tenant>', 'slug or id')
    .option('--reason <text>', 'why (kept on the tenant and in the audit log)')
    .option('--json', 'print JSON')
    .action(async (reference: string, options: { reason?: string } & JsonOption) => {
      const { tenant: row, changed } = await setTenantStatus(reference, 'suspended', options.reason);
      if (options.json) return printJson({ ...row, changed });
      say(changed ? `suspended tenant ${row.slug}` : `tenant ${row.slug} was already suspended`);
    });

  tenant
    .command('activate')
    .description('activate a suspended tenant again (a deleted one comes back with `tenant restore`)')
    .argument('<tenant>', 'slug or id')
    .option('--json', 'print JSON')
    .action(async (reference: string, options: JsonOption) => {
      const { tenant: row, changed } = await setTenantStatus(reference, 'active');
      if (options.json) return printJson({ ...row, changed });
      say(changed ? `activated tenant ${row.slug}` : `tenant ${row.slug} was already active`);
    });

  tenant
    .command('restore')
    .description('bring a soft-deleted tenant back, as active, before it is purged (audited with the reason)')
    .argument('<tenant>', 'slug or id')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--json', 'print JSON')
    .action(async (reference: string, options: { reason: string } & JsonOption) => {
      const row = await restoreTenant(reference, options.reason);
      if (options.json) return printJson(row);
      say(`restored tenant ${row.slug}: active again, no longer scheduled for purge`);
    });

  tenant
    .command('delete')
    .description('soft-delete a tenant (kept for TENANTRY_RETENTION_DAYS), or remove everything with --purge-data')
    .argument('<tenant>', 'slug or id')
    .option('--purge-data', 'remove rows, Redis keys and ACL user, and every object version and the bucket (or the prefix) now')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--reason <text>', 'why (kept in the audit log)')
    .option('--json', 'print JSON')
    .action(async (reference: string, options: { purgeData?: boolean; yes?: boolean; reason?: string } & JsonOption) => {
      const found = await findTenant(reference);
      await confirmDelete(found.slug, options.yes);
      const { tenant: row, changed } = await softDeleteTenant(found.id, cliConfig().TENANTRY_RETENTION_DAYS, options.reason);
      if (options.purgeData) {
        const report = await purgeTenant(row, options.reason);
        if (options.json) return printJson(report);
        return printPurge(report);
      }
      if (options.json) return printJson({ ...row, changed });
      say(
        changed
          ? `deleted tenant ${row.slug}; its data is purged after ${row.purge_after!.toISOString()} (or now: tenantry tenant delete ${row.slug} --purge-data)`
          : `tenant ${row.slug} was already deleted`,
      );
    });

  tenant
    .command('purge-expired')
    .description('purge every deleted tenant whose retention period is over (the retention job)')
    .argument('[tenants...]', 'only these tenants (slug or id), when they are past their retention period')
    .option('--json', 'print JSON')
    .action(async (only: string[], options: JsonOption) => {
      const reports = await purgeExpired(only);
      if (options.json) return printJson(reports);
      if (reports.length === 0) return say('no deleted tenant is past its retention period');
      reports.forEach(printPurge);
    });

  tenant
    .command('stats')
    .description('tenant totals by status and by plan (plans count tenants not deleted)')
    .option('--json', 'print JSON')
    .action(async (options: JsonOption) => {
      const stats = await tenantStats();
      if (options.json) return printJson(stats);
      printTable<[string, number]>(
        [
          ['status', (row) => row[0]],
          ['tenants', (row) => row[1]],
        ],
        Object.entries(stats.by_status),
      );
      say('');
      printTable<[string, number]>(
        [
          ['plan', (row) => row[0]],
          ['tenants', (row) => row[1]],
        ],
        Object.entries(stats.by_plan),
      );
      say(`\ntotal: ${stats.total}`);
    });

  tenant
    .command('export')
    .description("write a tenant's rows, member users and stored objects to a .tar.gz")
    .argument('<tenant>', 'slug or id')
    .requiredOption('-o, --output <file>', 'the archive to write (FILE.tar.gz)')
    .option('--json', 'print JSON')
    .action(async (reference: string, options: { output: string } & JsonOption) => {
      const { file, manifest } = await exportTenant(reference, options.output);
      if (options.json) return printJson({ file, ...manifest });
      const rows = manifest.tables.reduce((sum, table) => sum + table.rows, 0);
      say(
        `exported tenant ${manifest.source.slug} to ${file}: ${rows} rows in ${manifest.tables.length} tables, ${manifest.users.rows} users, ${manifest.objects.length} objects`,
      );
    });

  tenant
    .command('import')
    .description(
      'create a new tenant (new ids) from an export, trusting the file with data only: the plan, ' +
        "per-tenant limits, domain verification, API keys, billing and membership are not the archive's to say",
    )
    .argument('<file>', 'an archive written by `tenantry tenant export`')
    .requiredOption('--owner <user>', 'id or email of an existing, verified user: the only member of the new tenant, as owner')
    .option('--slug <slug>', 'slug of the new tenant (default: the exported one)')
    .option('--plan <plan>', 'plan id of the new tenant, whatever the archive says', 'free')
    .option('--keep-limits', "take the archive's per-tenant limit overrides (max_users, max_storage_bytes, max_api_requests_month); without it the plan's limits apply")
    .option('--public-url <url>', "the auth service's PUBLIC_URL: print invitation links instead of bare tokens")
    .option('--json', 'print JSON (invitation tokens included)')
    .addHelpText(
      'after',
      `
What comes in as written: the tenant's name and settings, its rows (new ids), its objects.
What does not:
  plan          --plan (free by default); the archive's plan is ignored
  limits        the plan's, unless --keep-limits takes the archive's overrides
  domains       unverified, with new verification tokens, none primary: verify each again
  members       --owner is the only member; every archived member (and each live invitation)
                gets a new invitation with the archived role, whether an account with that
                email exists or not: nobody joins without accepting it
  API keys      not imported: create new ones
  billing       the subscription is not imported: set billing up again
  audit log     kept as history, each entry's actor marked archive:… (the file could say anything)
The CLI sends no mail: each invitation token is printed once (stdout), hand it to its invitee.
A refused import writes nothing and removes its temporary files.`,
    )
    .action(
      async (
        file: string,
        options: { slug?: string; owner: string; plan: string; keepLimits?: boolean; publicUrl?: string } & JsonOption,
      ) => {
        if (options.publicUrl !== undefined && !URL.canParse(options.publicUrl)) {
          throw new CliError(`--public-url '${options.publicUrl}' is not a URL — give the auth service's PUBLIC_URL, e.g. https://app.example.com/`, 2);
        }
        const result = await importTenant(file, options);
        if (options.json) return printJson(result);
        printImport(result);
      },
    );

  tenant.addCommand(brandingCommand());
  tenant.addCommand(limitsCommand());
  tenant.addCommand(usageCommand());

  return tenant;
}
