import { Command } from 'commander';
import { printJson, printTable, say, type JsonOption } from '../output.js';
import { tenantUsage, usageMonthOption, type TenantUsageReport } from '../usage.js';

type MetricRow = TenantUsageReport['metrics'][number];

function printUsage(report: TenantUsageReport): void {
  say(`usage of tenant ${report.slug} in ${report.month} (UTC):`);
  printTable<MetricRow>(
    [
      ['metric', (row) => row.metric],
      ['limit', (row) => row.limit ?? 'unlimited'],
      ['used', (row) => row.used],
      ['remaining', (row) => row.remaining ?? 'unlimited'],
      ['counted as', (row) => (row.kind === 'sum' ? 'month total' : 'latest sample')],
    ],
    report.metrics,
  );
  // One line per day with any figure, one column per metric: a day without a bucket is '-'.
  const dates = [...new Set(report.metrics.flatMap((metric) => metric.days.map((day) => day.date)))].sort();
  const byMetric = report.metrics.map((metric) => new Map(metric.days.map((day) => [day.date, day.quantity])));
  say('');
  printTable<string>(
    [['day', (date) => date], ...report.metrics.map((metric, index): [string, (date: string) => unknown] => [metric.metric, (date) => byMetric[index]!.get(date)])],
    dates,
    `no usage recorded in ${report.month}`,
  );
}

/** `tenant usage`: each metric's limit, used, remaining and per-day figures for a UTC month. */
export function usageCommand(): Command {
  return new Command('usage')
    .description("a tenant's usage in a UTC month: each metric's limit, used, remaining and per-day figures (api.requests: day totals; users.count: the day's last hourly sample)")
    .argument('<tenant>', 'slug or id')
    .option('--month <YYYY-MM>', 'the UTC month (default: the current one)')
    .option('--json', 'print JSON (the report GET /billing/usage gives owners, with the slug)')
    .action(async (reference: string, options: { month?: string } & JsonOption) => {
      const report = await tenantUsage(reference, usageMonthOption(options.month));
      if (options.json) return printJson(report);
      printUsage(report);
    });
}
