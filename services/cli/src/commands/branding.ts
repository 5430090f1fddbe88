import { Command } from 'commander';
import { BRANDING_KEYS, changeBranding, getBranding, parseBrandingAssignments, type BrandingResult } from '../branding.js';
import { printFields, printJson, say, type JsonOption } from '../output.js';

function printBranding(result: BrandingResult): void {
  const entries = Object.entries(result.branding);
  if (entries.length === 0) return say(`tenant ${result.tenant.slug} has no branding — set some with \`tenantry tenant branding set ${result.tenant.slug} primary_color=#ff6600\``);
  printFields(entries);
}

/** `tenant branding …`: the public, non-secret look of a tenant (tenants.settings.branding). */
export function brandingCommand(): Command {
  const branding = new Command('branding').description(
    `a tenant's public branding (anonymous visitors read it): ${BRANDING_KEYS.join(', ')}`,
  );

  branding
    .command('set')
    .description('set branding keys (each value checked: hex colours, https URLs, an email, a name)')
    .argument('<tenant>', 'slug or id')
    .argument('<assignments...>', 'KEY=VALUE, e.g. primary_color=#ff6600 logo_url=https://cdn.example.com/logo.svg')
    .option('--json', 'print JSON')
    .action(async (tenant: string, assignments: string[], options: JsonOption) => {
      const result = await changeBranding(tenant, { set: parseBrandingAssignments(assignments) });
      if (options.json) return printJson(result);
      printBranding(result);
    });

  branding
    .command('get')
    .description("print a tenant's branding")
    .argument('<tenant>', 'slug or id')
    .option('--json', 'print JSON')
    .action(async (tenant: string, options: JsonOption) => {
      const result = await getBranding(tenant);
      if (options.json) return printJson(result);
      printBranding(result);
    });

  branding
    .command('unset')
    .description('remove branding keys')
    .argument('<tenant>', 'slug or id')
    .argument('<keys...>', `any of ${BRANDING_KEYS.join(', ')}`)
    .option('--json', 'print JSON')
    .action(async (tenant: string, keys: string[], options: JsonOption) => {
      const result = await changeBranding(tenant, { unset: keys });
      if (options.json) return printJson(result);
      printBranding(result);
    });

  return branding;
}
