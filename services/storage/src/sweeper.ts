import type { Pool } from 'pg';
import { withTenant } from '../../shared/src/db/tenant-context.js';
import type { Logger } from '../../shared/src/logger.js';
import type { ObjectStore } from './object-store.js';

export interface UploadSweeperDeps {
  /** app_service: app.storage_uploads_due, then each upload in its tenant's context. */
  pool: Pool;
  objects: ObjectStore;
  logger: Logger;
  intervalMs: number;
  /** How long past its expiry an upload is left alone: a POST begun just before may still land. */
  graceSeconds: number;
  /** Uploads per pass (default 100); a full batch is followed by another pass at once. */
  batchSize?: number;
}

export interface UploadSweeper {
  /** One pass over every due upload; resolves with how many were expired. */
  sweep(): Promise<number>;
  stop(): Promise<void>;
}

interface DueUpload {
  id: string;
  tenant_id: string;
  bucket: string;
  name: string;
}

/**
 * Frees what uploads never completed hold: their object is deleted and their reservation
 * released (status 'expired'), so the storage limit cannot be bypassed by never completing.
 * Each upload is locked while its object goes and re-checked as still pending: a replica
 * sweeping the same list, or a new upload of the same name (which waits on the lock through
 * the pending-name index), never sees the key deleted under an upload that is not this one,
 * and a completed upload's object is never touched (completing needs expires_at > now(),
 * and the sweep takes only uploads past it by the grace).
 */
export function startUploadSweeper(deps: UploadSweeperDeps): UploadSweeper {
  const { pool, objects, logger } = deps;
  const batchSize = deps.batchSize ?? 100;
  let running: Promise<number> | null = null;
  let stopped = false;

  async function expire(upload: DueUpload): Promise<boolean> {
    return withTenant(pool, { tenantId: upload.tenant_id }, async (client) => {
      const locked = await client.query({
        name: 'storage-sweep-lock',
        text: "SELECT 1 FROM file_uploads WHERE id = $1 AND status = 'pending' FOR UPDATE",
        values: [upload.id],
      });
      if (!locked.rowCount) return false;
      const location = objects.location(upload.tenant_id);
      await objects.remove(location.bucket, objects.key(location, upload.bucket, upload.name));
      await client.query({ name: 'storage-sweep-expire', text: "UPDATE file_uploads SET status = 'expired' WHERE id = $1", values: [upload.id] });
      return true;
    });
  }

  async function pass(): Promise<number> {
    let expired = 0;
    for (;;) {
      const { rows } = await pool.query<DueUpload>({
        name: 'storage-sweep-due',
        text: 'SELECT id, tenant_id, bucket, name FROM app.storage_uploads_due(make_interval(secs => $1), $2)',
        values: [deps.graceSeconds, batchSize],
      });
      let progressed = 0;
      for (const upload of rows) {
        if (stopped) return expired;
        try {
          if (await expire(upload)) progressed += 1;
        } catch (error) {
          // One failing upload (S3 refusing, a tenant gone) must not hold up the others; it is due again next pass.
          logger.warn({ err: error, uploadId: upload.id, tenantId: upload.tenant_id }, 'expired upload not swept; retrying next pass');
        }
      }
      expired += progressed;
      if (rows.length < batchSize || progressed === 0) return expired;
    }
  }

  function sweep(): Promise<number> {
    running ??= pass()
      .then((count) => {
        if (count > 0) logger.info({ expired: count }, 'expired uploads swept');
        return count;
      })
      .finally(() => {
        running = null;
      });
    return running;
  }

  const timer = setInterval(() => {
    sweep().catch((error: unknown) => logger.warn({ err: error }, 'upload sweep failed; retrying next interval'));
  }, deps.intervalMs);
  timer.unref();

  return {
    sweep,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
