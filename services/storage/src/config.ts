import { z } from 'zod';
import { postgresUrl, switchOn, tokenVerificationShape, unsetWhenEmpty } from '../../shared/src/config.js';
import { s3ConfigShape } from '../../shared/src/storage/location.js';

/** The longest a presigned upload policy lives (the issue: ≤ 15 min). */
export const MAX_UPLOAD_TTL_SECONDS = 900;
/** The longest a presigned download lives (the issue: ≤ 5 min). */
export const MAX_DOWNLOAD_TTL_SECONDS = 300;

const seconds = (fallback: number, max: number) => z.coerce.number().int().min(1).max(max).default(fallback);

/** Every variable the storage service reads, declared once. */
export const storageConfigSchema = z
  .object({
    /** app_service's URL: file rows inside withTenant, the sweeper through app.storage_uploads_due. */
    DATABASE_URL: postgresUrl,
    /**
     * A direct connection for the namespace keeper's LISTEN tenant_namespaces (a pooler in
     * transaction mode, as PgBouncer runs in production, cannot hold a LISTEN). Unset: DATABASE_URL.
     */
    STORAGE_LISTEN_DATABASE_URL: unsetWhenEmpty(postgresUrl),
    /** Redis with the default user (its password in the URL): health, and the tenants' ACL users. */
    REDIS_URL: z.string().url(),
    STORAGE_HOST: z.string().default('127.0.0.1'),
    STORAGE_PORT: z.coerce.number().int().min(1).max(65535).default(4004),
    ...s3ConfigShape,
    /**
     * The S3 endpoint clients reach (through the edge: `https://s3.<BASE_DOMAIN>`). Presigned
     * URLs are signed for this host, so it must be the one the client sends. Unset: S3_ENDPOINT.
     */
    S3_PUBLIC_ENDPOINT: unsetWhenEmpty(z.string().url()),
    /**
     * The S3 server's STS endpoint (AssumeRole), for scoped S3 credentials; MinIO serves it on
     * its S3 port. Unset: POST /storage/credentials {kind: 's3'} answers 501 sts_not_available.
     */
    S3_STS_ENDPOINT: unsetWhenEmpty(z.string().url()),
    /** How long an upload's presigned POST policy is valid (and its bytes reserved before the sweeper frees them). */
    STORAGE_UPLOAD_TTL_SECONDS: seconds(900, MAX_UPLOAD_TTL_SECONDS),
    /** How long a presigned download URL is valid. */
    STORAGE_DOWNLOAD_TTL_SECONDS: seconds(300, MAX_DOWNLOAD_TTL_SECONDS),
    /** How often the sweeper looks for uploads whose policy is past: never completed, refused, or whose file was deleted. */
    STORAGE_SWEEP_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
    /**
     * How long past its policy's expiry an upload is left alone before the sweeper settles it
     * (deletes an object no row counts): a POST that started just before may still be writing.
     */
    STORAGE_SWEEP_GRACE_SECONDS: z.coerce.number().int().min(0).max(3600).default(60),
    /**
     * Run the expired-upload sweeper in this process. Replicas may all run it: each upload is
     * locked while its object goes, so two never act on one.
     */
    STORAGE_SWEEPER: switchOn(),
    /**
     * Run the namespace keeper in this process (every tenant's Redis ACL user and bucket
     * follow its status). Replicas may all run it; its changes are idempotent.
     */
    STORAGE_NAMESPACE_KEEPER: switchOn(),
    ...tokenVerificationShape,
    LOG_LEVEL: z.string().default('info'),
  })
  .transform((config) => ({ ...config, S3_PUBLIC_ENDPOINT: config.S3_PUBLIC_ENDPOINT ?? config.S3_ENDPOINT }));

export type StorageConfig = z.infer<typeof storageConfigSchema>;
