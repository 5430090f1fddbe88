import type { Pool } from 'pg';
import { withTenant } from '../../shared/src/db/tenant-context.js';
import { refusingConstraint } from '../../shared/src/errors/database.js';
import type { Logger } from '../../shared/src/logger.js';
import type { ObjectStore } from './object-store.js';

export interface LateWriteGuardDeps {
  pool: Pool;
  objects: ObjectStore;
  logger: Logger;
  /** How long past a policy's expiry a POST begun before it may still land. */
  graceSeconds: number;
}

/**
 * A presigned POST cannot be revoked: until its policy expires, the client may send it again
 * (a replay), and S3 stores the declared bytes once more. After its file was deleted, or its
 * upload refused, no row would count that object. The guard looks at the key again once the
 * policy is past, and deletes an object no file holds.
 *
 * The timers live in this process: a restart within the policy's lifetime (≤ 15 min) leaves
 * such a late object behind (the tenant's own bytes, not counted; purge removes them).
 */
export interface LateWriteGuard {
  /** Re-checks the key of (bucket, name) once a policy valid until `policyExpiresAt` is past. */
  watch(input: { tenantId: string; bucket: string; name: string; policyExpiresAt: Date }): void;
  /** Re-checks every watched key now (tests), resolving when done. */
  flush(): Promise<void>;
  stop(): void;
}

/** Ends the re-check's transaction without a trace of the row that held the name. */
class RollBack extends Error {}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export function lateWriteGuard(deps: LateWriteGuardDeps): LateWriteGuard {
  const timers = new Map<NodeJS.Timeout, () => Promise<void>>();
  let stopped = false;

  /**
   * Holds the name with a pending upload of 0 bytes (the pending-name index keeps every new
   * upload of it waiting, and so every new file), deletes the object unless a file has the
   * name, and rolls back: no row is ever written.
   */
  async function recheck(tenantId: string, bucket: string, name: string): Promise<void> {
    const location = deps.objects.location(tenantId);
    try {
      await withTenant(deps.pool, { tenantId }, async (client) => {
        try {
          await client.query({
            name: 'storage-late-hold',
            text: `INSERT INTO file_uploads (tenant_id, bucket, name, size, content_type, sha256, expires_at)
                   VALUES ($1, $2, $3, 0, 'application/octet-stream', $4, now() + interval '1 minute')`,
            values: [tenantId, bucket, name, EMPTY_SHA256],
          });
        } catch (error) {
          // A new upload holds the name: the key is its, and its completion checks the bytes.
          if (refusingConstraint(error) === 'file_uploads_name_pending') throw new RollBack();
          throw error;
        }
        const file = await client.query({ name: 'storage-late-file', text: 'SELECT 1 FROM files WHERE bucket = $1 AND name = $2', values: [bucket, name] });
        if (!file.rowCount) await deps.objects.remove(location.bucket, deps.objects.key(location, bucket, name));
        throw new RollBack();
      });
    } catch (error) {
      if (!(error instanceof RollBack)) throw error;
    }
  }

  return {
    watch({ tenantId, bucket, name, policyExpiresAt }) {
      if (stopped) return;
      const delay = Math.max(0, policyExpiresAt.getTime() - Date.now()) + deps.graceSeconds * 1000;
      const run = () =>
        recheck(tenantId, bucket, name).catch((error: unknown) => deps.logger.warn({ err: error, tenantId, bucket, name }, 'late write re-check failed; the object may stay'));
      const timer = setTimeout(() => {
        timers.delete(timer);
        void run();
      }, delay);
      timer.unref();
      timers.set(timer, run);
    },
    async flush() {
      const due = [...timers];
      for (const [timer] of due) {
        clearTimeout(timer);
        timers.delete(timer);
      }
      await Promise.all(due.map(([, run]) => run()));
    },
    stop() {
      stopped = true;
      for (const timer of timers.keys()) clearTimeout(timer);
      timers.clear();
    },
  };
}
