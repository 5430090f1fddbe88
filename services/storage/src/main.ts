import { loadConfigOrExit } from '../../shared/src/config.js';
import { createServicePool } from '../../shared/src/db/pool.js';
import { serveUntilSignalled } from '../../shared/src/http/serve.js';
import { createLogger } from '../../shared/src/logger.js';
import { createRedisClient } from '../../shared/src/redis.js';
import { buildStorageApp } from './app.js';
import { storageConfigSchema } from './config.js';
import { startNamespaceKeeper } from './namespace-keeper.js';
import { ObjectStore } from './object-store.js';
import { AssumeRoleIssuer } from './sts.js';
import { startUploadSweeper } from './sweeper.js';
import { AuthKeys } from '../../shared/src/auth/token-keys.js';

const config = loadConfigOrExit(storageConfigSchema);
const logger = createLogger('storage', config.LOG_LEVEL);
// Survives the database going away: requests answer 503 until it is back, see createServicePool.
const pool = createServicePool({ connectionString: config.DATABASE_URL, applicationName: 'tenantry-storage', logger });
const redis = createRedisClient(config.REDIS_URL, { logger, name: 'tenantry-storage' });
const settings = { layout: config.STORAGE_LAYOUT, sharedBucket: config.STORAGE_SHARED_BUCKET };
const objects = new ObjectStore({
  endpoint: config.S3_ENDPOINT,
  publicEndpoint: config.S3_PUBLIC_ENDPOINT,
  accessKey: config.S3_ACCESS_KEY,
  secretKey: config.S3_SECRET_KEY,
  region: config.S3_REGION,
  settings,
});
const sts = config.S3_STS_ENDPOINT
  ? new AssumeRoleIssuer({ stsEndpoint: config.S3_STS_ENDPOINT, accessKey: config.S3_ACCESS_KEY, secretKey: config.S3_SECRET_KEY, region: config.S3_REGION })
  : null;
if (!sts) logger.info('S3_STS_ENDPOINT unset: scoped S3 credentials answer 501 sts_not_available');

// Read in the background: the health check answers while auth starts; token routes answer 401 until the keys are in.
const authKeys = new AuthKeys({ jwksUrl: config.AUTH_JWKS_URL, issuer: config.AUTH_ISSUER, audience: config.AUTH_AUDIENCE, logger });
void authKeys.start().catch((error: unknown) => {
  if (!(error instanceof Error && error.name === 'AbortError')) logger.error({ err: error }, 'auth keys never loaded');
});

const sweeper = config.STORAGE_SWEEPER
  ? startUploadSweeper({
      pool,
      objects,
      logger: logger.child({ component: 'sweeper' }),
      intervalMs: config.STORAGE_SWEEP_INTERVAL_SECONDS * 1000,
      graceSeconds: config.STORAGE_SWEEP_GRACE_SECONDS,
    })
  : null;
if (!sweeper) logger.info('STORAGE_SWEEPER=false: another process frees the uploads never completed');

// Every tenant's Redis user (and bucket) follows its status, whoever changed it.
const keeper = config.STORAGE_NAMESPACE_KEEPER
  ? startNamespaceKeeper({
      listenDatabaseUrl: config.STORAGE_LISTEN_DATABASE_URL ?? config.DATABASE_URL,
      pool,
      redis,
      s3: objects.internal,
      settings,
      logger: logger.child({ component: 'namespaces' }),
    })
  : null;
if (!keeper) logger.info("STORAGE_NAMESPACE_KEEPER=false: another process keeps the tenants' namespaces in step");

const app = buildStorageApp({
  pool,
  redis,
  logger,
  verifier: authKeys,
  objects,
  sts,
  uploadTtlSeconds: config.STORAGE_UPLOAD_TTL_SECONDS,
  downloadTtlSeconds: config.STORAGE_DOWNLOAD_TTL_SECONDS,
});

serveUntilSignalled(app, {
  host: config.STORAGE_HOST,
  port: config.STORAGE_PORT,
  logger,
  onClose: async () => {
    authKeys.stop();
    // The upload in hand is finished (its object and its row) before the pool closes.
    await Promise.all([sweeper?.stop(), keeper?.stop()]);
    await Promise.all([pool.end(), redis.quit()]);
  },
});
