import { Command } from 'commander';
import { addDomain, challengeRecord, listDomains, removeDomain, setPrimaryDomain, verifyDomain, type DomainRow } from '../domains.js';
import { printJson, printTable, say, type JsonOption } from '../output.js';

const domainJson = (row: DomainRow) => ({
  domain: row.domain,
  verified: row.verified_at !== null,
  verified_at: row.verified_at,
  is_primary: row.is_primary,
  txt_record: challengeRecord(row),
  created_at: row.created_at,
});

export function domainCommand(): Command {
  const domain = new Command('domain').description("a tenant's custom domains, verified through a DNS TXT record");

  domain
    .command('add')
    .description('add a domain and print the TXT record that proves it')
    .argument('<tenant>', 'slug or id')
    .argument('<domain>', 'host name such as app.example.com')
    .option('--json', 'print JSON')
    .action(async (tenant: string, name: string, options: JsonOption) => {
      const row = await addDomain(tenant, name);
      if (options.json) return printJson(domainJson(row));
      const record = challengeRecord(row);
      say(`added ${row.domain} to ${tenant}. Create this DNS record, then run \`tenantry domain verify ${tenant} ${row.domain}\`:`);
      say(`  ${record.name}  TXT  "${record.value}"`);
    });

  domain
    .command('verify')
    .description("look up the domain's TXT record and mark it verified")
    .argument('<tenant>', 'slug or id')
    .argument('<domain>', 'host name')
    .option('--json', 'print JSON')
    .action(async (tenant: string, name: string, options: JsonOption) => {
      const result = await verifyDomain(tenant, name);
      if (options.json) return printJson({ ...domainJson(result.domain), already_verified: result.already_verified });
      say(result.already_verified ? `${result.domain.domain} was already verified` : `verified ${result.domain.domain}`);
    });

  domain
    .command('list')
    .description("list a tenant's domains")
    .argument('<tenant>', 'slug or id')
    .option('--json', 'print JSON')
    .action(async (tenant: string, options: JsonOption) => {
      const rows = await listDomains(tenant);
      if (options.json) return printJson(rows.map(domainJson));
      printTable<DomainRow>(
        [
          ['domain', (row) => row.domain],
          ['verified', (row) => (row.verified_at ? 'yes' : 'no')],
          ['primary', (row) => (row.is_primary ? 'yes' : '')],
          ['txt record', (row) => (row.verified_at ? '' : `${challengeRecord(row).name} "${row.verification_token}"`)],
        ],
        rows,
        `tenant ${tenant} has no domains — add one with \`tenantry domain add ${tenant} DOMAIN\``,
      );
    });

  domain
    .command('remove')
    .description('remove a domain from a tenant')
    .argument('<tenant>', 'slug or id')
    .argument('<domain>', 'host name')
    .action(async (tenant: string, name: string) => {
      await removeDomain(tenant, name);
      say(`removed ${name} from ${tenant}`);
    });

  domain
    .command('set-primary')
    .description("make a verified domain the tenant's primary one")
    .argument('<tenant>', 'slug or id')
    .argument('<domain>', 'host name')
    .option('--json', 'print JSON')
    .action(async (tenant: string, name: string, options: JsonOption) => {
      const row = await setPrimaryDomain(tenant, name);
      if (options.json) return printJson(domainJson(row));
      say(`${row.domain} is now the primary domain of ${tenant}`);
    });

  return domain;
}
