import { Command } from 'commander';
import { billingStatus, listEvents, parseLimit, parseWait, replayEvent, type StripeEventRow } from '../billing.js';
import { printFields, printJson, printTable, say, type JsonOption } from '../output.js';

const EVENT_COLUMNS: Array<[string, (row: StripeEventRow) => unknown]> = [
  ['id', (row) => row.id],
  ['type', (row) => row.type],
  ['status', (row) => row.status],
  ['attempts', (row) => row.attempts],
  ['error / outcome', (row) => row.last_error ?? row.outcome],
  ['received', (row) => row.received_at],
  ['created', (row) => row.created_at],
];

export function billingCommand(): Command {
  const billing = new Command('billing').description("tenants' billing: status, and the Stripe webhook inbox");

  billing
    .command('status')
    .description('plan in force, subscription, Stripe customer, suspension, entitlements and the latest events of a tenant')
    .argument('<tenant>', 'slug or id')
    .option('--json', 'print JSON')
    .action(async (reference: string, options: JsonOption) => {
      const status = await billingStatus(reference);
      if (options.json) return printJson(status);
      const subscription = status.subscription;
      printFields([
        ['tenant', `${status.tenant.slug} (${status.tenant.id})`],
        ['status', status.tenant.status],
        ...(status.suspension ? ([['suspended', `${status.suspension.reason ?? 'no reason given'} since ${status.suspension.since?.toISOString() ?? '?'}`]] as Array<[string, unknown]>) : []),
        ['plan', `${status.plan.id} (${status.plan.name})`],
        ['customer', status.customer_id],
        ['subscription', subscription ? `${subscription.status} on ${subscription.plan_id} (${subscription.stripe_subscription_id ?? 'no Stripe id'})` : 'none'],
        ...(subscription
          ? ([
              ['period', `${subscription.current_period_start?.toISOString() ?? '?'} – ${subscription.current_period_end?.toISOString() ?? '?'}`],
              ['trial end', subscription.trial_end],
              ['cancel at period end', subscription.cancel_at_period_end ? 'yes' : 'no'],
              ['past due since', subscription.past_due_since],
            ] as Array<[string, unknown]>)
          : []),
        ['features', Object.entries(status.entitlements.features).filter(([, on]) => on === true).map(([name]) => name).join(', ') || 'none'],
        ['limits', status.entitlements.limits],
      ]);
      say('');
      printTable(EVENT_COLUMNS, status.recent_events, 'no Stripe events for this tenant');
    });

  billing
    .command('events')
    .description('the Stripe webhook inbox, newest first')
    .option('--failed', 'only events that failed (gave up), or are retrying after an error')
    .option('--tenant <tenant>', "only the events of this tenant's Stripe customer and subscription")
    .option('--limit <n>', 'at most this many (1–1000)', '50')
    .option('--json', 'print JSON')
    .action(async (options: { failed?: boolean; tenant?: string; limit: string } & JsonOption) => {
      const rows = await listEvents({ failed: options.failed, tenant: options.tenant, limit: parseLimit(options.limit) });
      if (options.json) return printJson(rows);
      printTable(EVENT_COLUMNS, rows, options.failed ? 'no failed events' : 'no Stripe events');
    });

  billing
    .command('replay')
    .description(
      'apply one event again: reset it to pending (no attempts, due now) so the running billing worker applies it, ' +
        'and wait for the outcome. Exit 0 when applied or ignored; 1 when it failed, or when no worker took it within ' +
        '--wait (it stays queued). Every replay is an audit entry (stripe_events.replay), with --reason when given',
    )
    .argument('<event>', 'the event id (evt_…)')
    .option('--wait <seconds>', 'how long to wait for the worker (0: queue it and return)', '10')
    .option('--reason <text>', 'why (kept in the audit log)')
    .option('--json', 'print JSON')
    .action(async (id: string, options: { wait: string; reason?: string } & JsonOption) => {
      const waitSeconds = parseWait(options.wait);
      const result = await replayEvent(id, { waitSeconds, reason: options.reason });
      const { event } = result;
      const succeeded = result.state === 'done' ? event.status !== 'failed' : result.state === 'queued' && waitSeconds === 0;
      if (!succeeded) process.exitCode = 1;
      if (options.json) return printJson({ ...event, state: result.state });
      if (result.state === 'done') {
        say(`${event.id} (${event.type}): ${event.status}${event.outcome ? ` — ${event.outcome}` : ''}${event.status === 'failed' && event.last_error ? ` — ${event.last_error}` : ''}`);
      } else if (result.state === 'retrying') {
        say(`${event.id} (${event.type}): the worker's attempt failed (${event.last_error ?? 'no error recorded'}); it retries at ${event.next_attempt_at.toISOString()}`);
      } else if (waitSeconds === 0) {
        say(`${event.id} (${event.type}) is queued for the billing worker`);
      } else {
        say(`${event.id} (${event.type}) was not applied within ${waitSeconds} s: the billing worker seems not to be running — the event stays queued and applies when it starts`);
      }
    });

  return billing;
}
