import { createHash } from 'node:crypto';
import type { Client } from 'minio';
import { ensureBucket } from '../../shared/src/storage/namespace.js';
import { createS3Client, objectKey, s3ErrorCode, tenantStorageLocation, type StorageSettings, type TenantStorageLocation } from '../../shared/src/storage/location.js';

export interface ObjectStoreOptions {
  /** Where this service reaches the S3 server (HEAD, DELETE, buckets). */
  endpoint: string;
  /** Where clients reach it (through the edge): presigned URLs are signed for this host. */
  publicEndpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  settings: StorageSettings;
}

/** What a presigned POST gives the client: the URL to POST a multipart form to, and the fields to send before the file. */
export interface PresignedPost {
  url: string;
  fields: Record<string, string>;
}

/** What the S3 server says of a stored object. */
export interface StoredObject {
  size: number;
  /** The SHA-256 the server computed on upload, base64, as S3 reports it; null when it reports none. */
  sha256Base64: string | null;
}

/** S3 answered something this service cannot go on with (neither the object nor its absence). */
export class ObjectStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ObjectStoreError';
  }
}

/** The longest S3 key (bytes of UTF-8): AWS, MinIO and the others agree. */
export const MAX_OBJECT_KEY_BYTES = 1024;

/** The most one POST (or PUT) puts in S3: larger objects need a multipart upload, which a POST policy cannot fix. */
export const MAX_POST_BYTES = 5 * 1024 ** 3;

/** How long the URL of this service's own HEAD lives: it is used at once. */
const INTERNAL_URL_SECONDS = 60;

/**
 * A Content-Disposition that makes a browser save the file under its own name (its last
 * segment): an ASCII fallback for old clients, and RFC 6266's filename* for the exact name.
 */
export function attachmentDisposition(name: string): string {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const ascii = base.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const encoded = encodeURIComponent(base).replace(/['()*]/g, (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/**
 * The S3 side of the service, through the standard S3 API only (any S3 server): two clients
 * with the same credentials, one that talks to the server, one that only signs, for the
 * host clients reach it at. Both have the region set, so signing never asks the network.
 */
export class ObjectStore {
  readonly internal: Client;
  private readonly presigner: Client;
  /** Buckets known to exist: made once per process (making is idempotent, so a race costs one call). */
  private readonly knownBuckets = new Set<string>();

  constructor(readonly options: ObjectStoreOptions) {
    const credentials = { accessKey: options.accessKey, secretKey: options.secretKey, region: options.region };
    this.internal = createS3Client(options.endpoint, credentials);
    this.presigner = createS3Client(options.publicEndpoint, credentials);
  }

  get region(): string {
    return this.options.region;
  }

  get publicEndpoint(): string {
    return this.options.publicEndpoint;
  }

  location(tenantId: string): TenantStorageLocation {
    return tenantStorageLocation(tenantId, this.options.settings);
  }

  key(location: TenantStorageLocation, logicalBucket: string, name: string): string {
    return objectKey(location, logicalBucket, name);
  }

  /**
   * Makes the location's bucket unless this process knows it exists: the tenant's own in the
   * bucket layout (every path that creates a tenant makes it, and the namespace keeper too;
   * this covers a tenant created before either ran), the shared one in the prefix layout.
   */
  async ensureBucket(location: TenantStorageLocation): Promise<void> {
    if (this.knownBuckets.has(location.bucket)) return;
    await ensureBucket(this.internal, location.bucket);
    this.knownBuckets.add(location.bucket);
  }

  /**
   * A presigned POST whose policy fixes everything the client could vary: the bucket, the
   * exact key, the exact Content-Type, the exact size, and the SHA-256 of the content (the
   * S3 server computes it on arrival and refuses a mismatch), valid until `expiresAt`.
   */
  async presignUpload(input: { bucket: string; key: string; contentType: string; size: number; sha256Hex: string; expiresAt: Date }): Promise<PresignedPost> {
    const policy = this.presigner.newPostPolicy();
    policy.setBucket(input.bucket);
    policy.setKey(input.key);
    policy.setContentType(input.contentType);
    policy.setContentLengthRange(input.size, input.size);
    policy.setExpires(input.expiresAt);
    const checksum = Buffer.from(input.sha256Hex, 'hex').toString('base64');
    policy.policy.conditions.push(['eq', '$x-amz-checksum-algorithm', 'SHA256'], ['eq', '$x-amz-checksum-sha256', checksum]);
    policy.formData['x-amz-checksum-algorithm'] = 'SHA256';
    policy.formData['x-amz-checksum-sha256'] = checksum;
    const { postURL, formData } = await this.presigner.presignedPostPolicy(policy);
    return { url: postURL, fields: formData };
  }

  /** A presigned GET for clients, saved under the file's own name. */
  presignDownload(input: { bucket: string; key: string; name: string; ttlSeconds: number }): Promise<string> {
    return this.presigner.presignedGetObject(input.bucket, input.key, input.ttlSeconds, {
      'response-content-disposition': attachmentDisposition(input.name),
    });
  }

  /**
   * The stored object's size and SHA-256, or null when there is none. A presigned HEAD sent
   * with `x-amz-checksum-mode: ENABLED`, the standard way to have S3 report the checksum it
   * stored (the minio client's statObject does not ask for it).
   */
  async stat(bucket: string, key: string): Promise<StoredObject | null> {
    const url = await this.internal.presignedUrl('HEAD', bucket, key, INTERNAL_URL_SECONDS);
    let response: Response;
    try {
      response = await fetch(url, { method: 'HEAD', headers: { 'x-amz-checksum-mode': 'ENABLED' }, signal: AbortSignal.timeout(10_000) });
    } catch (error) {
      throw new ObjectStoreError('the S3 server did not answer', { cause: error });
    }
    if (response.status === 404) return null;
    if (!response.ok) throw new ObjectStoreError(`the S3 server answered ${response.status} to HEAD ${bucket}/${key}`);
    const length = response.headers.get('content-length');
    if (length === null || !/^\d+$/.test(length)) throw new ObjectStoreError('the S3 server reported no size');
    return { size: Number(length), sha256Base64: response.headers.get('x-amz-checksum-sha256') };
  }

  /**
   * The object's size and SHA-256 from its bytes, read through once (a GET), or null when
   * there is none: for S3 servers that store no checksum or do not report it. Costs a read
   * of the whole object.
   */
  async digest(bucket: string, key: string): Promise<{ size: number; sha256Base64: string } | null> {
    let body: AsyncIterable<Buffer>;
    try {
      body = await this.internal.getObject(bucket, key);
    } catch (error) {
      const code = s3ErrorCode(error);
      if (code === 'NoSuchKey' || code === 'NoSuchBucket') return null;
      throw error;
    }
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of body) {
      hash.update(chunk);
      size += chunk.length;
    }
    return { size, sha256Base64: hash.digest('base64') };
  }

  /** Deletes an object; one that is not there (or whose bucket is not) counts as deleted. */
  async remove(bucket: string, key: string): Promise<void> {
    try {
      await this.internal.removeObject(bucket, key);
    } catch (error) {
      const code = s3ErrorCode(error);
      if (code === 'NoSuchKey' || code === 'NoSuchBucket') return;
      throw error;
    }
  }
}
