import type { Redis } from 'ioredis';
import type { Pool, PoolClient } from 'pg';
import { inTransaction } from '../../../shared/src/db/transaction.js';
import type { Logger } from '../../../shared/src/logger.js';
import { aggregateEntries, compareEntryIds, parseUsageEntry, USAGE_STREAM, type UsageEntry } from './stream.js';

export interface IngestDeps {
  pool: Pool;
  redis: Redis;
  logger: Logger;
  stream?: string;
  batchSize: number;
  /**
   * Runs inside the transaction after the counts are added, before the offset moves and the
   * transaction commits: tests crash the ingester there.
   */
  beforeCommit?: (client: PoolClient) => Promise<void>;
}

export interface IngestResult {
  /** Entries consumed (valid and malformed): the offset moved past them. */
  entries: number;
  /** The tenants and hours (Unix seconds) that received counts: the quota notices to check. */
  counted: Array<Pick<UsageEntry, 'tenantId' | 'hourSeconds'>>;
  /** True when the stream held no more than this batch: a drain stops there. */
  exhausted: boolean;
}

const START = '0-0';

async function committedOffset(db: Pick<Pool | PoolClient, 'query'>, stream: string): Promise<string> {
  const { rows } = await db.query<{ last_entry_id: string }>('SELECT last_entry_id FROM usage_ingest_offsets WHERE stream = $1', [stream]);
  return rows[0]?.last_entry_id ?? START;
}

/**
 * Adds the next batch of the stream to tenant_usage and moves the offset past it, both in
 * one transaction under an advisory lock, so one ingester at a time writes and a crash
 * before COMMIT leaves neither: the next run reads the same entries again. Then trims what
 * is committed (never beyond: an uncommitted entry stays in the stream).
 */
export async function ingestBatch(deps: IngestDeps): Promise<IngestResult> {
  const stream = deps.stream ?? USAGE_STREAM;
  const offset = await committedOffset(deps.pool, stream);
  const raw = (await deps.redis.xrange(stream, `(${offset}`, '+', 'COUNT', deps.batchSize)) as Array<[string, string[]]>;
  if (raw.length === 0) return { entries: 0, counted: [], exhausted: true };

  const committed = await inTransaction(deps.pool, {}, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended('tenantry.usage_ingest:' || $1, 0))", [stream]);
    // Another ingester may have committed part or all of this batch while we read it.
    const current = await committedOffset(client, stream);
    const batch = raw.filter(([id]) => compareEntryIds(id, current) > 0);
    if (batch.length === 0) return null;
    const valid: UsageEntry[] = [];
    for (const [id, fields] of batch) {
      const parsed = parseUsageEntry(fields);
      if ('entry' in parsed) valid.push(parsed.entry);
      else deps.logger.warn({ stream, id, fields, problem: parsed.malformed }, 'malformed usage entry skipped');
    }
    if (valid.length > 0) {
      const rows = aggregateEntries(valid);
      await client.query('SELECT app.usage_add($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[])', [rows.tenantIds, rows.metrics, rows.hours, rows.quantities]);
    }
    await deps.beforeCommit?.(client);
    const lastId = batch.at(-1)![0];
    await client.query(
      `INSERT INTO usage_ingest_offsets (stream, last_entry_id) VALUES ($1, $2)
       ON CONFLICT (stream) DO UPDATE SET last_entry_id = excluded.last_entry_id, updated_at = now()`,
      [stream, lastId],
    );
    return { lastId, entries: batch.length, counted: valid.map(({ tenantId, hourSeconds }) => ({ tenantId, hourSeconds })) };
  });
  // Another ingester was ahead: read again from its offset.
  if (!committed) return { entries: 0, counted: [], exhausted: false };
  // MINID keeps the committed entry itself: the next read starts after it (exclusive).
  await deps.redis.xtrim(stream, 'MINID', committed.lastId).catch((error: unknown) => deps.logger.warn({ err: error, stream }, 'usage stream not trimmed'));
  return { entries: committed.entries, counted: committed.counted, exhausted: raw.length < deps.batchSize };
}
