import type { Redis } from 'ioredis';
import type { Pool, PoolClient } from 'pg';
import type { Logger } from '../../../shared/src/logger.js';
import type { Mailer } from '../../../shared/src/mail/mailer.js';
import { formatUsageMonth, parseUsageMonth, USAGE_METRICS, usageMonthOf } from '../../../shared/src/usage.js';
import { ingestBatch } from './ingest.js';
import { sendQuotaNotices } from './notices.js';

export interface UsageWorkerDeps {
  /** app_service: the definers, the offsets, quota_notices inside the tenant context. */
  pool: Pool;
  redis: Redis;
  mailer: Mailer;
  logger: Logger;
  /** Injectable clock: the hourly sample and the month of the quota notices. */
  now: () => Date;
  /** Between two drains of the stream, default 1000. */
  intervalMs?: number;
  /** Stream entries per transaction, default 1000. */
  batchSize?: number;
  /** The stream read, default usage:api (tests use their own). */
  stream?: string;
  /** See IngestDeps.beforeCommit: tests crash the ingester there. */
  beforeCommit?: (client: PoolClient) => Promise<void>;
}

export interface UsageWorker {
  /** Samples this hour, then drains the stream every interval and samples every new hour. */
  start(): Promise<void>;
  /** Stops the loop and waits for the pass in hand. */
  stop(): Promise<void>;
  /** Ingests everything in the stream now, then sends the quota notices due in the months it added to; returns the entries consumed. */
  drain(): Promise<number>;
  /** Samples the sampled metrics (users.count, storage.bytes) for the hour of `at` (default the clock's now); returns the tenants sampled. */
  sample(at?: Date): Promise<number>;
  /** One pass of the loop: drain; in a new hour of the clock, sample and send the month's notices due. */
  tick(): Promise<void>;
}

const HOUR_MS = 3_600_000;
/** The metrics whose "used" is the latest sample (app.usage_sample knows each). */
const SAMPLED_METRICS = USAGE_METRICS.filter((definition) => definition.kind === 'sample').map((definition) => definition.metric);

export function createUsageWorker(deps: UsageWorkerDeps): UsageWorker {
  const { logger } = deps;
  const intervalMs = deps.intervalMs ?? 1_000;
  const batchSize = deps.batchSize ?? 1_000;
  let stopped = true;
  let timer: NodeJS.Timeout | undefined;
  let lastSampledHour: number | null = null;
  // One pass at a time in this process (the advisory lock orders processes).
  let queue: Promise<unknown> = Promise.resolve();
  const serialized = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => undefined);
    return run;
  };

  /** The notices due in each month, for the tenants given (null: every tenant). */
  async function sendNotices(months: Map<string, Set<string> | null>): Promise<void> {
    for (const [month, tenants] of months) {
      await sendQuotaNotices({ pool: deps.pool, mailer: deps.mailer, logger }, parseUsageMonth(month), tenants && [...tenants]).catch((error: unknown) =>
        logger.error({ err: error, month }, 'quota notices failed'),
      );
    }
  }

  async function drainOnce(): Promise<number> {
    let consumed = 0;
    const counted = new Map<string, Set<string>>();
    for (;;) {
      const result = await ingestBatch({ pool: deps.pool, redis: deps.redis, logger, stream: deps.stream, batchSize, beforeCommit: deps.beforeCommit });
      consumed += result.entries;
      for (const { tenantId, hourSeconds } of result.counted) {
        const month = formatUsageMonth(usageMonthOf(new Date(hourSeconds * 1000)));
        counted.set(month, (counted.get(month) ?? new Set()).add(tenantId));
      }
      if (result.exhausted) break;
    }
    // Only the tenants that were counted, in the months their counts fell in: the check sums
    // each one's month, so it stays as small as the traffic of the last second.
    await sendNotices(counted);
    return consumed;
  }

  async function sampleAt(at: Date): Promise<number> {
    const hour = Math.floor(at.getTime() / HOUR_MS) * HOUR_MS;
    let sampled = 0;
    // One statement per metric: each a short transaction, and one failing leaves the others' samples in.
    const failures: unknown[] = [];
    for (const metric of SAMPLED_METRICS) {
      try {
        const { rows } = await deps.pool.query<{ sampled: number }>('SELECT app.usage_sample($1, $2) AS sampled', [metric, new Date(hour)]);
        sampled = Math.max(sampled, rows[0]!.sampled);
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) throw failures[0];
    lastSampledHour = hour;
    return sampled;
  }

  async function tickOnce(): Promise<void> {
    await drainOnce().catch((error: unknown) => logger.error({ err: error }, 'usage ingest failed'));
    const now = deps.now();
    const hour = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS;
    if (hour === lastSampledHour) return;
    await sampleAt(now).catch((error: unknown) => logger.error({ err: error }, 'usage sample failed'));
    // Hourly too: a lowered limit makes a tenant due without a new request.
    await sendNotices(new Map([[formatUsageMonth(usageMonthOf(now)), null]]));
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      void serialized(tickOnce).finally(schedule);
    }, intervalMs);
  }

  return {
    async start() {
      stopped = false;
      await serialized(tickOnce);
      schedule();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await queue;
    },
    drain: () => serialized(drainOnce),
    sample: (at = deps.now()) => serialized(() => sampleAt(at)),
    tick: () => serialized(tickOnce),
  };
}
