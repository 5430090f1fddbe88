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
  /** One pass over every due upload; resolves with how many were settled. */
  sweep(): Promise<number>;
  stop(): Promise<void>;
}

type UploadStatus = 'pending' | 'completed' | 'expired' | 'refused';

interface DueUpload {
  id: string;
  tenant_id: string;
  bucket: string;
  name: string;
  status: UploadStatus;
  file_id: string | null;
}

/** What became of an upload's key when it was settled. */
type Outcome = 'deleted' | 'kept';

/** Why an upload was due, for the log. */
const dueBecause = (upload: DueUpload): string =>
  upload.status === 'pending' ? 'expired' : upload.status === 'completed' && upload.file_id === null ? 'file_deleted' : upload.status;

/**
 * Settles every upload once its presigned POST policy is past (plus the grace): a policy
 * cannot be revoked, so until then S3 may store its bytes again, whatever became of the
 * upload. A pending upload is expired, freeing its reservation, so the storage limit cannot
 * be bypassed by never completing; a refused upload, or a completed one whose file was
 * deleted, may have been replayed. Each has its key deleted unless a file or another upload
 * holds the name now (a re-upload of the same name keeps its object), and is marked settled.
 * A completed upload whose file lives is only marked settled. The state is the database's,
 * so a restart loses nothing: what was due is due again.
 *
 * Each upload is locked and re-read as unsettled, and its name locked (app.lock_file_name,
 * which starting an upload takes too) while its key is looked at and deleted: a replica
 * sweeping the same list acts once, and no new upload of the name starts (and posts its
 * object) between the look and the delete. A pending upload is never completed meanwhile
 * (completing needs expires_at > now(), and the sweep takes only uploads past it by the grace).
 */
export function startUploadSweeper(deps: UploadSweeperDeps): UploadSweeper {
  const { pool, objects, logger } = deps;
  const batchSize = deps.batchSize ?? 100;
  let running: Promise<number> | null = null;
  let stopped = false;

  async function settle(upload: DueUpload): Promise<Outcome | null> {
    return withTenant(pool, { tenantId: upload.tenant_id }, async (client) => {
      const locked = await client.query<{ status: UploadStatus }>({
        name: 'storage-sweep-lock',
        text: 'SELECT status FROM file_uploads WHERE id = $1 AND settled_at IS NULL FOR UPDATE',
        values: [upload.id],
      });
      const current = locked.rows[0];
      if (!current) return null;
      await client.query({ name: 'storage-sweep-lock-name', text: 'SELECT app.lock_file_name($1, $2, $3)', values: [upload.tenant_id, upload.bucket, upload.name] });
      // One statement, one snapshot: a completion turns its pending upload into a file at once.
      const held = await client.query<{ held: boolean }>({
        name: 'storage-sweep-name-held',
        text: `SELECT EXISTS (SELECT 1 FROM files WHERE bucket = $2 AND name = $3)
                   OR EXISTS (SELECT 1 FROM file_uploads WHERE bucket = $2 AND name = $3 AND status = 'pending' AND id <> $1) AS held`,
        values: [upload.id, upload.bucket, upload.name],
      });
      let outcome: Outcome = 'kept';
      if (!held.rows[0]!.held) {
        const location = objects.location(upload.tenant_id);
        await objects.remove(location.bucket, objects.key(location, upload.bucket, upload.name));
        outcome = 'deleted';
      }
      await client.query({
        name: 'storage-sweep-settle',
        text: "UPDATE file_uploads SET status = CASE status WHEN 'pending' THEN 'expired' ELSE status END, settled_at = now() WHERE id = $1",
        values: [upload.id],
      });
      return outcome;
    });
  }

  async function pass(): Promise<number> {
    let settled = 0;
    const outcomes: Record<string, number> = {};
    try {
      for (;;) {
        const { rows } = await pool.query<DueUpload>({
          name: 'storage-sweep-due',
          text: 'SELECT id, tenant_id, bucket, name, status, file_id FROM app.storage_uploads_due(make_interval(secs => $1), $2)',
          values: [deps.graceSeconds, batchSize],
        });
        let progressed = 0;
        for (const upload of rows) {
          if (stopped) return settled;
          try {
            const outcome = await settle(upload);
            if (outcome === null) continue;
            progressed += 1;
            const label = `${dueBecause(upload)}:${outcome}`;
            outcomes[label] = (outcomes[label] ?? 0) + 1;
          } catch (error) {
            // One failing upload (S3 refusing, a tenant gone) must not hold up the others; it is due again next pass.
            logger.warn({ err: error, uploadId: upload.id, tenantId: upload.tenant_id }, 'due upload not settled; retrying next pass');
          }
        }
        settled += progressed;
        if (rows.length < batchSize || progressed === 0) return settled;
      }
    } finally {
      // e.g. {"expired:deleted": 2, "refused:deleted": 1, "file_deleted:kept": 1, "completed:kept": 40}.
      if (settled > 0) logger.info({ settled, outcomes }, 'uploads settled');
    }
  }

  function sweep(): Promise<number> {
    running ??= pass().finally(() => {
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
