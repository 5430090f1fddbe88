import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meterIdentifier } from '../../services/billing/src/worker/usage-reporter.js';
import { services } from '../helpers/database.js';
import { stripeClientFor } from './stripe-fixtures.js';
import { createBillingTenant, startWorkerKit, type WorkerKit } from './worker-kit.js';

interface SentMeterEvent {
  idempotencyKey: string | undefined;
  fields: Record<string, string>;
}

/**
 * A pass-through proxy to stripe-mock that keeps every meter event request it forwards.
 * `crashAfterSending(n)`: the n-th next request reaches Stripe, which answers, but the
 * caller never hears back — what a reporter that dies between sending and recording leaves.
 */
class RecordingProxy {
  readonly sent: SentMeterEvent[] = [];
  private server: Server;
  private lostAnswers = new Set<number>();
  private seen = 0;
  port = 0;

  constructor(private readonly upstream: URL) {
    this.server = createServer((incoming, outgoing) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('end', () => {
        const body = Buffer.concat(chunks);
        const index = this.seen++;
        if (incoming.url === '/v1/billing/meter_events') {
          this.sent.push({
            idempotencyKey: incoming.headers['idempotency-key'] as string | undefined,
            fields: Object.fromEntries(new URLSearchParams(body.toString())),
          });
        }
        const forwarded = httpRequest(
          { host: this.upstream.hostname, port: this.upstream.port, path: incoming.url, method: incoming.method, headers: incoming.headers },
          (answer) => {
            const answerChunks: Buffer[] = [];
            answer.on('data', (chunk: Buffer) => answerChunks.push(chunk));
            answer.on('end', () => {
              if (this.lostAnswers.has(index)) {
                incoming.socket.destroy();
                return;
              }
              outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
              outgoing.end(Buffer.concat(answerChunks));
            });
          },
        );
        forwarded.on('error', () => outgoing.destroy());
        forwarded.end(body);
      });
    });
  }

  crashAfterSending(requestsFromNow: number): void {
    // The SDK sends a request whose connection closed once more, whatever its retry
    // setting (stripe-node#1040): that answer is lost too.
    this.lostAnswers.add(this.seen + requestsFromNow - 1);
    this.lostAnswers.add(this.seen + requestsFromNow);
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.address() as AddressInfo).port;
    return `http://127.0.0.1:${this.port}`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

let kit: WorkerKit;
let proxy: RecordingProxy;
const HOUR_MS = 3_600_000;
const now = new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS + 30 * 60_000);
const hour = (hoursAgo: number): Date => new Date(Math.floor(now.getTime() / HOUR_MS) * HOUR_MS - hoursAgo * HOUR_MS);

beforeAll(async () => {
  kit = await startWorkerKit();
  proxy = new RecordingProxy(new URL(services().endpoints.stripeApiBase));
  await proxy.start();
});

afterAll(async () => {
  await proxy?.stop();
  await kit?.close();
});

describe('the usage reporter', () => {
  it('sends each finished hour once per tenant and metric, resends the same identifier after a crash, and records once', async () => {
    await kit.admin.query(
      `INSERT INTO plans (id, name, monthly_price_cents, rate_limit_rps, stripe_price_id, stripe_metered_price_id, meter_event_name, meter_metric)
       VALUES ('metered', 'Metered', 1900, 20, 'price_meteredbase', 'price_meteredusage', 'api_requests', 'api.requests')`,
    );
    const tenant = await createBillingTenant(kit.admin, 'usage', { customerStored: true });
    const unmetered = await createBillingTenant(kit.admin, 'unmetered', { customerStored: true });
    await kit.admin.query("UPDATE tenants SET plan_id = 'metered' WHERE id = $1", [tenant.tenantId]);
    const buckets: [string, string, Date, number][] = [
      [tenant.tenantId, 'api.requests', hour(30 * 24), 7], // late, still inside Stripe's 35 days
      [tenant.tenantId, 'api.requests', hour(3), 120],
      [tenant.tenantId, 'api.requests', hour(1), 45],
      [tenant.tenantId, 'api.requests', hour(36 * 24), 99], // outside Stripe's window: never sent
      [tenant.tenantId, 'api.requests', hour(0), 10], // the hour is not over
      [tenant.tenantId, 'api.requests', hour(2), 0], // nothing used
      [tenant.tenantId, 'storage.bytes', hour(2), 5000], // no meter for it
      [unmetered.tenantId, 'api.requests', hour(2), 300], // its plan has no meter
    ];
    for (const [tenantId, metric, periodStart, quantity] of buckets) {
      await kit.admin.query('INSERT INTO tenant_usage (tenant_id, metric, period_start, quantity) VALUES ($1, $2, $3, $4)', [tenantId, metric, periodStart, quantity]);
    }
    const expected = [hour(30 * 24), hour(3), hour(1)];
    const stripe = stripeClientFor(`http://127.0.0.1:${proxy.port}`, { maxNetworkRetries: 0 });
    const worker = kit.worker(stripe);

    // The second send reaches Stripe, and the reporter dies before it records it.
    proxy.crashAfterSending(2);
    await expect(worker.reportUsage(now)).rejects.toThrow();
    const afterCrash = await reported(tenant.tenantId);
    expect(afterCrash).toEqual([{ period_start: expected[0], reported_quantity: '7' }]);

    const firstRecordedAt = await recordedAt(tenant.tenantId);
    expect(await worker.reportUsage(now)).toBe(2);
    const recordedAfterRerun = await recordedAt(tenant.tenantId);
    // Recorded once: what was recorded before the crash is not recorded again.
    expect(recordedAfterRerun[0]).toEqual(firstRecordedAt[0]);
    expect(await worker.reportUsage(now)).toBe(0);
    expect(await recordedAt(tenant.tenantId)).toEqual(recordedAfterRerun);

    const identifiers = proxy.sent.map(({ fields }) => fields.identifier);
    const [first, second, third] = expected.map((periodStart) => meterIdentifier(tenant.tenantId, 'api.requests', periodStart));
    // The crashed run's send and the SDK's own resend, then the next run's: one identifier.
    expect(identifiers).toEqual([first, second, second, second, third]);
    expect(second).toBe(`${tenant.tenantId}:api.requests:${expected[1]!.toISOString().replace('.000Z', 'Z')}`);
    for (const { idempotencyKey, fields } of proxy.sent) {
      expect(idempotencyKey).toBe(fields.identifier);
      expect(fields).toMatchObject({ event_name: 'api_requests', 'payload[stripe_customer_id]': tenant.customerId });
    }
    expect(proxy.sent.map(({ fields }) => [fields.timestamp, fields['payload[value]']])).toEqual([
      [String(expected[0]!.getTime() / 1000), '7'],
      [String(expected[1]!.getTime() / 1000), '120'],
      [String(expected[1]!.getTime() / 1000), '120'],
      [String(expected[1]!.getTime() / 1000), '120'],
      [String(expected[2]!.getTime() / 1000), '45'],
    ]);

    const final = await reported(tenant.tenantId);
    expect(final).toEqual([
      { period_start: expected[0], reported_quantity: '7' },
      { period_start: expected[1], reported_quantity: '120' },
      { period_start: expected[2], reported_quantity: '45' },
    ]);
    const unreported = await kit.admin.query('SELECT count(*)::int AS n FROM tenant_usage WHERE reported_at IS NOT NULL AND tenant_id = $1', [unmetered.tenantId]);
    expect(unreported.rows[0].n).toBe(0);
  });

  it('keeps identifiers within Stripe\'s 100 characters, the same on every run', () => {
    const periodStart = hour(4);
    const long = meterIdentifier('0b6f8a3e-1d2c-4e5f-8a9b-0c1d2e3f4a5b', `m${'x'.repeat(62)}`, periodStart);
    expect(long.length).toBeLessThanOrEqual(100);
    expect(meterIdentifier('0b6f8a3e-1d2c-4e5f-8a9b-0c1d2e3f4a5b', `m${'x'.repeat(62)}`, periodStart)).toBe(long);
    expect(meterIdentifier('0b6f8a3e-1d2c-4e5f-8a9b-0c1d2e3f4a5b', `m${'y'.repeat(62)}`, periodStart)).not.toBe(long);
  });
});

async function reported(tenantId: string): Promise<{ period_start: Date; reported_quantity: string }[]> {
  const { rows } = await kit.admin.query<{ period_start: Date; reported_quantity: string }>(
    `SELECT period_start, reported_quantity::text FROM tenant_usage WHERE tenant_id = $1 AND reported_quantity IS NOT NULL ORDER BY period_start`,
    [tenantId],
  );
  return rows;
}

async function recordedAt(tenantId: string): Promise<Date[]> {
  const { rows } = await kit.admin.query<{ reported_at: Date }>(
    'SELECT reported_at FROM tenant_usage WHERE tenant_id = $1 AND reported_at IS NOT NULL ORDER BY period_start',
    [tenantId],
  );
  return rows.map((row) => row.reported_at);
}
