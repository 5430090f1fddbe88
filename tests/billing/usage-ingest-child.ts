/**
 * A usage worker in a process of its own, for the test that kills it with SIGKILL while it
 * holds its ingest transaction: on the flush named by HOLD_AT_FLUSH it prints `holding` and
 * waits, with the counts added and the offset not yet moved, until it is killed.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { createUsageWorker } from '../../services/billing/src/usage/index.js';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 });
const redis = new Redis(process.env.REDIS_URL!);
const holdAt = Number(process.env.HOLD_AT_FLUSH);
let flushes = 0;
const worker = createUsageWorker({
  pool,
  redis,
  mailer: { send: async () => undefined, close: () => undefined },
  logger: pino({ level: 'silent' }),
  now: () => new Date(),
  stream: process.env.STREAM,
  batchSize: Number(process.env.BATCH_SIZE),
  beforeCommit: async () => {
    flushes += 1;
    if (flushes !== holdAt) return;
    process.stdout.write('holding\n');
    await new Promise(() => undefined);
  },
});
await worker.drain();
process.stdout.write('drained\n');
