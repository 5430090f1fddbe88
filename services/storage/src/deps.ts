import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import type { Principal } from '../../shared/src/auth/verifier.js';
import type { Logger } from '../../shared/src/logger.js';
import type { ObjectStore } from './object-store.js';
import type { StsIssuer } from './sts.js';

/** Everything the HTTP app is built from; main.ts makes them from the config, tests make their own. */
export interface StorageDependencies {
  /** app_service: file rows inside withTenant. */
  pool: Pool;
  /** The default user: /healthz, and the tenants' ACL users (POST /storage/credentials kind redis). */
  redis: Redis;
  logger: Logger;
  /** Verifies access tokens with the auth service's published keys (a TokenVerifier). */
  verifier: { verify(token: string): Principal | null };
  /** The S3 server: objects, buckets, and the URLs clients are given. */
  objects: ObjectStore;
  /** Scoped S3 credentials; null when the S3 server has no STS (kind s3 answers 501). */
  sts: StsIssuer | null;
  /** How long an upload's POST policy lives (≤ 15 min; tests make it short). */
  uploadTtlSeconds: number;
  /** How long a download URL lives (≤ 5 min). */
  downloadTtlSeconds: number;
}
