import { Client } from 'minio';
import { z } from 'zod';
import { tenantBucket } from '../tenancy.js';

/**
 * bucket: one S3 bucket per tenant (`tenant-<id>`), the default; prefix: one shared bucket
 * with a `<tenant-id>/` prefix per tenant, for S3 providers that cap the number of buckets.
 */
export const STORAGE_LAYOUTS = ['bucket', 'prefix'] as const;
export type StorageLayout = (typeof STORAGE_LAYOUTS)[number];

/** The S3 settings every process that touches tenant storage reads (storage, auth, CLI). */
export const s3ConfigShape = {
  S3_ENDPOINT: z.string().url(),
  S3_ACCESS_KEY: z.string().min(1),
  S3_SECRET_KEY: z.string().min(1),
  S3_REGION: z.string().min(1).default('us-east-1'),
  STORAGE_LAYOUT: z.enum(STORAGE_LAYOUTS).default('bucket'),
  /** The one bucket of the prefix layout. */
  STORAGE_SHARED_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name')
    .default('tenantry-files'),
};

export interface StorageSettings {
  layout: StorageLayout;
  sharedBucket: string;
}

/** Where a tenant's objects live: the bucket, and the prefix every one of its keys starts with. */
export interface TenantStorageLocation {
  layout: StorageLayout;
  bucket: string;
  /** '' in the bucket layout, `<tenant-id>/` in the prefix layout. */
  prefix: string;
}

export function tenantStorageLocation(tenantId: string, settings: StorageSettings): TenantStorageLocation {
  return settings.layout === 'bucket'
    ? { layout: 'bucket', bucket: tenantBucket(tenantId), prefix: '' }
    : { layout: 'prefix', bucket: settings.sharedBucket, prefix: `${tenantId}/` };
}

/**
 * The S3 key of a file, relative to the tenant's location: `<logical bucket>/<name>`. Keys are
 * names (not opaque ids) so that scoped S3 credentials, exports and imports see the files a
 * tenant knows.
 */
const relativeObjectKey = (logicalBucket: string, name: string): string => `${logicalBucket}/${name}`;

export const objectKey = (location: TenantStorageLocation, logicalBucket: string, name: string): string =>
  `${location.prefix}${relativeObjectKey(logicalBucket, name)}`;

/**
 * An S3 client for any S3 server. The region is always given, so the client never asks the
 * server for a bucket's region (which presigning would otherwise do over the network).
 */
export function createS3Client(endpoint: string, credentials: { accessKey: string; secretKey: string; sessionToken?: string; region: string }): Client {
  const url = new URL(endpoint);
  return new Client({
    endPoint: url.hostname,
    port: url.port ? Number(url.port) : undefined,
    useSSL: url.protocol === 'https:',
    accessKey: credentials.accessKey,
    secretKey: credentials.secretKey,
    sessionToken: credentials.sessionToken,
    region: credentials.region,
    pathStyle: true,
  });
}

/** The S3 error code (NoSuchKey, BucketNotEmpty, …) the minio client puts on an error, if any. */
export const s3ErrorCode = (error: unknown): string | undefined =>
  error && typeof error === 'object' && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
