import { Command } from 'commander';
import { printJson, printTable, say, type JsonOption } from '../output.js';
import { listPlans, setTenantPlan, syncPlans, type PlanRow, type PlanSyncResult } from '../plans.js';

const money = (plan: PlanRow): string =>
  plan.monthly_price_cents === 0 ? '-' : `${(plan.monthly_price_cents / 100).toFixed(2)} ${plan.currency.toUpperCase()}/month`;
const limit = (value: number | null): string => (value === null ? 'unlimited' : String(value));
const enabledFeatures = (features: Record<string, unknown>): string =>
  Object.entries(features)
    .filter(([, value]) => value === true)
    .map(([name]) => name)
    .join(',') || '-';

function describeSync(result: PlanSyncResult, dryRun: boolean): string {
  const verb = (action: string) => (dryRun && action !== 'keep' ? `would ${action}` : { create: 'created', update: 'updated', keep: 'kept' }[action]);
  const parts = [
    `product ${result.product.id} ${verb(result.product.action)}`,
    `price ${result.price.id ?? `(${result.price.lookup_key})`} ${verb(result.price.action)}`,
  ];
  if (result.metered_price) {
    const { meter } = result.metered_price;
    parts.push(`meter ${meter.id ?? meter.event_name} ${verb(meter.action)}`);
    parts.push(`metered price ${result.metered_price.id ?? `(${result.metered_price.lookup_key})`} ${verb(result.metered_price.action)}`);
  }
  parts.push(`database ${result.database === 'keep' ? 'unchanged' : dryRun ? 'would be updated' : 'updated'}`);
  return `${result.plan_id}: ${parts.join(', ')}`;
}

export function planCommand(): Command {
  const plan = new Command('plan').description('plans: list them, sync them to Stripe, set a tenant\'s plan by hand');

  plan
    .command('list')
    .description('every plan: price, limits, features, whether it is public, its Stripe ids and meter')
    .option('--json', 'print JSON')
    .action(async (options: JsonOption) => {
      const rows = await listPlans();
      if (options.json) return printJson(rows);
      printTable<PlanRow>(
        [
          ['id', (row) => row.id],
          ['name', (row) => row.name],
          ['price', money],
          ['users', (row) => limit(row.max_users)],
          ['storage', (row) => limit(row.max_storage_bytes)],
          ['requests/month', (row) => limit(row.max_api_requests_month)],
          ['rps', (row) => row.rate_limit_rps],
          ['features', (row) => enabledFeatures(row.features)],
          ['public', (row) => (row.is_public ? 'yes' : 'no')],
          ['stripe price', (row) => row.stripe_price_id],
          ['meter', (row) => (row.meter_event_name ? `${row.meter_event_name} (${row.meter_metric})` : null)],
        ],
        rows,
        'no plans — run `tenantry db migrate`, which seeds them',
      );
    });

  plan
    .command('sync')
    .description(
      "create or update Stripe's catalogue for every paid plan (monthly_price_cents > 0): a Product tenantry_<plan>, " +
        'a monthly Price with lookup_key = the plan id (a changed amount gets a new Price; the key moves to it), a metered ' +
        'Price (lookup_key <plan>_metered) on the Billing Meter of plans with meter_event_name; stores their ids in plans. ' +
        'Idempotent. Needs STRIPE_SECRET_KEY (STRIPE_API_BASE for stripe-mock)',
    )
    .option('--dry-run', 'read Stripe and say what would change; write nothing to Stripe or the database')
    .option('--json', 'print JSON')
    .action(async (options: { dryRun?: boolean } & JsonOption) => {
      const report = await syncPlans({ dryRun: options.dryRun ?? false });
      if (options.json) return printJson(report);
      if (report.plans.length === 0) say('no paid plans: nothing to sync');
      for (const result of report.plans) say(describeSync(result, report.dry_run));
      if (report.skipped.length > 0) say(`skipped (no monthly price): ${report.skipped.join(', ')}`);
      const createdAtZero = report.plans.filter((result) => result.metered_price?.action === 'create').map((result) => result.plan_id);
      if (createdAtZero.length > 0) {
        say(
          `metered prices ${report.dry_run ? 'would be ' : ''}created at 0 per unit for ${createdAtZero.join(', ')} — set the per-unit amount in Stripe ` +
            '(a new Price with the same lookup key and "transfer lookup key"); the next sync keeps it',
        );
      }
    });

  plan
    .command('set')
    .description(
      "put a tenant on a plan by hand (e.g. enterprise; non-public plans too), audited with the reason; the edges apply its limits at once. " +
        'A tenant with a Stripe subscription is set back by its next subscription event: change the subscription instead',
    )
    .argument('<tenant>', 'slug or id')
    .argument('<plan>', 'plan id (see `tenantry plan list`)')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--json', 'print JSON')
    .action(async (tenantRef: string, planId: string, options: { reason: string } & JsonOption) => {
      const change = await setTenantPlan(tenantRef, planId, options.reason);
      if (options.json) {
        return printJson({
          tenant_id: change.tenant.id,
          slug: change.tenant.slug,
          plan_id: change.tenant.plan_id,
          previous_plan_id: change.previous_plan_id,
          changed: change.changed,
          subscription: change.subscription,
        });
      }
      if (!change.changed) say(`tenant ${change.tenant.slug} is already on plan ${planId}: nothing changed`);
      else say(`tenant ${change.tenant.slug}: plan ${change.previous_plan_id} → ${change.tenant.plan_id} (audited, edges purged)`);
      if (change.subscription && change.subscription.plan_id !== planId) {
        say(
          `warning: the tenant has a Stripe subscription (${change.subscription.status}, plan ${change.subscription.plan_id}); its next event sets that plan again — change or cancel it in Stripe`,
        );
      }
    });

  return plan;
}
