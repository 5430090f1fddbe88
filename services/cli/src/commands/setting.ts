import { Command } from 'commander';
import { printJson, printTable, say, type JsonOption } from '../output.js';
import { getSetting, listSettings, parseSettingValue, setSetting, unsetSetting, type SettingRow } from '../settings.js';

export function settingCommand(): Command {
  const setting = new Command('setting').description("a tenant's private settings: dotted keys, JSON values");

  setting
    .command('set')
    .description('set KEY to VALUE (JSON when it parses, else a string)')
    .argument('<tenant>', 'slug or id')
    .argument('<key>', 'dotted key such as branding.primary_color')
    .argument('<value>', 'JSON (42, true, {"a":1}, "text") or plain text')
    .option('--string', 'store VALUE as text even when it parses as JSON')
    .option('--json', 'print JSON')
    .action(async (tenant: string, key: string, raw: string, options: { string?: boolean } & JsonOption) => {
      const row = await setSetting(tenant, key, parseSettingValue(raw, options.string));
      if (options.json) return printJson(row);
      say(`${row.key} = ${JSON.stringify(row.value)}`);
    });

  setting
    .command('get')
    .description('print the value of KEY as JSON')
    .argument('<tenant>', 'slug or id')
    .argument('<key>', 'dotted key')
    .option('--json', 'print the whole setting as JSON')
    .action(async (tenant: string, key: string, options: JsonOption) => {
      const row = await getSetting(tenant, key);
      if (options.json) return printJson(row);
      say(JSON.stringify(row.value));
    });

  setting
    .command('list')
    .description("list a tenant's settings")
    .argument('<tenant>', 'slug or id')
    .option('--prefix <key>', 'only KEY and the keys under it (KEY.…)')
    .option('--json', 'print JSON')
    .action(async (tenant: string, options: { prefix?: string } & JsonOption) => {
      const rows = await listSettings(tenant, options.prefix);
      if (options.json) return printJson(rows);
      printTable<SettingRow>(
        [
          ['key', (row) => row.key],
          ['value', (row) => JSON.stringify(row.value)],
          ['updated', (row) => row.updated_at],
        ],
        rows,
        `tenant ${tenant} has no settings`,
      );
    });

  setting
    .command('unset')
    .description('remove KEY')
    .argument('<tenant>', 'slug or id')
    .argument('<key>', 'dotted key')
    .action(async (tenant: string, key: string) => {
      await unsetSetting(tenant, key);
      say(`removed ${key} from ${tenant}`);
    });

  return setting;
}
