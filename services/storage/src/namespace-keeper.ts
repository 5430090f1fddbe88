import type { Redis } from 'ioredis';
import type { Client } from 'minio';
import pg from 'pg';
import { isUuid } from '../../shared/src/ids.js';
import type { Logger } from '../../shared/src/logger.js';
import type { StorageSettings } from '../../shared/src/storage/location.js';
import { applyTenantStatus, type NamespaceStatus } from '../../shared/src/storage/namespace.js';

/** Tenant ids read per query when reconciling. */
const TENANT_PAGE = 1000;

export interface NamespaceKeeperDeps {
  /** A direct connection (not through a transaction-mode pooler) for LISTEN tenant_namespaces. */
  listenDatabaseUrl: string;
  /** app_service: a tenant's status through app.resolve_tenant_by_id, whatever its tenant context. */
  pool: pg.Pool;
  /** The default Redis user, which manages the tenants' ACL users. */
  redis: Redis;
  s3: Client;
  settings: StorageSettings;
  logger: Logger;
  /** How often every tenant with a namespace is checked again (default 5 minutes). */
  reconcileIntervalMs?: number;
}

export interface NamespaceKeeper {
  stop(): Promise<void>;
  /** Applies one tenant's state now (tests; the CLI and auth apply it themselves). */
  apply(tenantId: string, mode?: ApplyMode): Promise<void>;
  /** One reconciliation pass; resolves when every tenant it found was applied. */
  reconcile(): Promise<number>;
}


/**
 * full: write the user's rules and state (and persist the ACL file) whatever it is now — a
 * notification says something changed. check: write only when the user is missing or on/off
 * is wrong — a reconciliation pass touches every tenant, and an ACL SAVE per tenant per pass
 * would rewrite the whole file once for each of them.
 */
export type ApplyMode = 'full' | 'check';

const LISTEN_CHANNEL = 'tenant_namespaces';
const FIRST_RETRY_MS = 250;
const LONGEST_RETRY_MS = 10_000;
/** Tenants applied at once: each is a few round trips to Postgres, Redis and S3. */
const CONCURRENCY = 4;
const USERNAME = /^tenant-([0-9a-f-]{36})$/;

/**
 * Keeps every tenant's Redis ACL user (and bucket) in step with its status, whoever changed
 * it — the CLI, the billing worker, auth, or a platform admin's plain UPDATE: a trigger on
 * tenants notifies `tenant_namespaces` with the tenant's id on insert, status change and
 * delete, and the keeper reads the state back and applies it:
 *   active → the user on (its bucket made if missing), suspended or deleted → the user off,
 *   which ends its open connections at once, no row → the user removed.
 * S3 is not switched here: the plain S3/STS API has no way to revoke issued credentials (and
 * the MinIO admin API is never used), so the storage service refuses a tenant that is not
 * active and its STS credentials, at most 15 minutes long, run out.
 * Notifications sent while the keeper was away are lost, so it reconciles at start, after
 * every reconnection and every reconcileIntervalMs: each tenant that has a Redis user (and,
 * in the bucket layout, each tenant bucket) is applied again.
 */
export function startNamespaceKeeper(deps: NamespaceKeeperDeps): NamespaceKeeper {
  const { logger } = deps;
  let stopped = false;
  let listener: pg.Client | null = null;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let reconnectDelay = FIRST_RETRY_MS;
  const retryTimers = new Map<string, NodeJS.Timeout>();
  const failures = new Map<string, number>();

  // A tenant is applied by one worker at a time; a notification for a tenant in hand runs it again after.
  const queued = new Map<string, ApplyMode>();
  const inHand = new Set<string>();
  const again = new Map<string, ApplyMode>();
  let workers = 0;
  const idleWaiters: Array<() => void> = [];

  async function readStatus(tenantId: string): Promise<NamespaceStatus> {
    const { rows } = await deps.pool.query<{ status: NamespaceStatus }>({
      name: 'namespace-keeper-status',
      text: 'SELECT app.storage_tenant_status($1) AS status',
      values: [tenantId],
    });
    return rows[0]!.status;
  }

  async function apply(tenantId: string, mode: ApplyMode = 'full'): Promise<void> {
    const status = await readStatus(tenantId);
    await applyTenantStatus(deps, tenantId, status, { onlyIfChanged: mode === 'check' });
    logger.debug({ tenantId, status, mode }, 'tenant namespaces applied');
  }

  function scheduleRetry(tenantId: string, mode: ApplyMode, error: unknown): void {
    const attempt = (failures.get(tenantId) ?? 0) + 1;
    failures.set(tenantId, attempt);
    const delay = Math.min(FIRST_RETRY_MS * 2 ** attempt, 60_000);
    logger.warn({ err: error, tenantId, attempt, retryInMs: delay }, 'tenant namespaces not applied; retrying');
    clearTimeout(retryTimers.get(tenantId));
    retryTimers.set(
      tenantId,
      setTimeout(() => {
        retryTimers.delete(tenantId);
        enqueue(tenantId, mode);
      }, delay),
    );
  }

  async function work(): Promise<void> {
    workers += 1;
    try {
      for (;;) {
        if (stopped) return;
        // Never one in hand: enqueue() sets those aside in `again`.
        const next = queued.entries().next();
        if (next.done) return;
        const [tenantId, mode] = next.value;
        queued.delete(tenantId);
        inHand.add(tenantId);
        try {
          await apply(tenantId, mode);
          failures.delete(tenantId);
        } catch (error) {
          if (!stopped) scheduleRetry(tenantId, mode, error);
        } finally {
          inHand.delete(tenantId);
          const later = again.get(tenantId);
          if (later) {
            again.delete(tenantId);
            queued.set(tenantId, later);
          }
        }
      }
    } finally {
      workers -= 1;
      if (workers === 0 && queued.size === 0) for (const wake of idleWaiters.splice(0)) wake();
    }
  }

  function enqueue(tenantId: string, mode: ApplyMode = 'full'): void {
    if (stopped || !isUuid(tenantId)) return;
    const id = tenantId.toLowerCase();
    const waiting = inHand.has(id) ? again : queued;
    // A full apply asked for while a check waits wins.
    if (waiting.get(id) !== 'full') waiting.set(id, mode);
    while (workers < CONCURRENCY && workers < queued.size) void work();
  }

  function idle(): Promise<void> {
    if (workers === 0 && queued.size === 0) return Promise.resolve();
    return new Promise((resolve) => idleWaiters.push(resolve));
  }

  /**
   * Every tenant: each row of `tenants` (a page at a time), and each tenant something of
   * which exists outside Postgres — its Redis user, its bucket — even when its row is gone.
   */
  async function knownTenants(): Promise<Set<string>> {
    const ids = new Set<string>();
    for (let after: string | null = null; ; ) {
      const { rows }: { rows: Array<{ id: string }> } = await deps.pool.query<{ id: string }>({
        name: 'namespace-keeper-tenants',
        text: 'SELECT id FROM app.storage_tenant_ids($1, $2) AS id',
        values: [after, TENANT_PAGE],
      });
      for (const row of rows) ids.add(row.id);
      if (rows.length < TENANT_PAGE) break;
      after = rows[rows.length - 1]!.id;
    }
    const users = (await deps.redis.call('ACL', 'USERS')) as string[];
    for (const user of users) {
      const match = USERNAME.exec(user);
      if (match && isUuid(match[1]!)) ids.add(match[1]!);
    }
    if (deps.settings.layout === 'bucket') {
      for (const bucket of await deps.s3.listBuckets()) {
        const match = /^tenant-([0-9a-f-]{36})$/.exec(bucket.name);
        if (match && isUuid(match[1]!)) ids.add(match[1]!);
      }
    }
    return ids;
  }

  let reconciling: Promise<number> | null = null;
  function reconcile(): Promise<number> {
    reconciling ??= (async () => {
      try {
        const ids = await knownTenants();
        for (const id of ids) enqueue(id, 'check');
        await idle();
        logger.info({ tenants: ids.size }, 'tenant namespaces reconciled');
        return ids.size;
      } catch (error) {
        logger.warn({ err: error }, 'tenant namespaces not reconciled; trying again at the next pass');
        return 0;
      } finally {
        reconciling = null;
      }
    })();
    return reconciling;
  }

  function listen(): void {
    const client = new pg.Client({ connectionString: deps.listenDatabaseUrl, application_name: 'tenantry-storage-keeper', keepAlive: true });
    let lost = false;
    const reconnect = (error?: Error) => {
      if (lost) return;
      lost = true;
      if (listener === client) listener = null;
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (stopped) return;
      logger.warn({ err: error, retryInMs: reconnectDelay }, `${LISTEN_CHANNEL} listener lost; reconnecting`);
      reconnectTimer = setTimeout(listen, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, LONGEST_RETRY_MS);
    };
    client.on('error', reconnect);
    client.on('end', () => reconnect());
    client.on('notification', (message) => {
      if (message.channel === LISTEN_CHANNEL && message.payload) enqueue(message.payload);
    });
    listener = client;
    client
      .connect()
      .then(() => client.query(`LISTEN ${LISTEN_CHANNEL}`))
      .then(() => {
        if (stopped) return void client.end().catch(() => undefined);
        reconnectDelay = FIRST_RETRY_MS;
        // Changes made while nobody listened.
        void reconcile();
      })
      .catch((error: Error) => reconnect(error));
  }

  listen();
  const interval = setInterval(() => void reconcile(), deps.reconcileIntervalMs ?? 5 * 60_000);
  interval.unref();

  return {
    apply,
    reconcile,
    async stop() {
      stopped = true;
      clearInterval(interval);
      clearTimeout(reconnectTimer);
      for (const timer of retryTimers.values()) clearTimeout(timer);
      retryTimers.clear();
      queued.clear();
      const client = listener;
      listener = null;
      await client?.end().catch(() => undefined);
      // Let the tenants in hand finish.
      while (inHand.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    },
  };
}
