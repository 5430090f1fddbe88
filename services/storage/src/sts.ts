import { AssumeRoleProvider } from 'minio/dist/esm/AssumeRoleProvider.mjs';
import type { TenantStorageLocation } from '../../shared/src/storage/location.js';

/** How long scoped S3 credentials live: STS's minimum, and the issue's maximum (15 min). */
export const STS_DURATION_SECONDS = 900;

export interface TemporaryCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: string;
}

/** Issues S3 credentials the S3 server itself confines to one tenant's location. */
export interface StsIssuer {
  issue(location: TenantStorageLocation): Promise<TemporaryCredentials>;
}

/** The STS endpoint did not issue credentials (an error answer, or no answer). */
export class StsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StsError';
  }
}

/**
 * Read (and, in the bucket layout, list) only. Writes go through presigned uploads, which the
 * database counts against the tenant's storage limit; a credential that could put or delete
 * objects would store bytes no row counts (past the limit, unbilled) or leave file rows
 * without their objects.
 */
const OBJECT_ACTIONS = ['s3:GetObject'];
const BUCKET_ACTIONS = ['s3:ListBucket', 's3:GetBucketLocation'];

/**
 * The inline session policy: what the temporary credentials may do is the intersection of
 * this and the root user's rights, so they reach the tenant's objects and nothing else. The
 * bucket layout grants reading the tenant's own bucket and listing it; the prefix layout
 * grants reading the objects under `<id>/` of the shared bucket and no listing at all.
 * An `s3:prefix` condition cannot confine a listing: MinIO checks conditions against values
 * from the query and the headers alike and passes when any of them matches, while the listing
 * uses the first query value — so `?prefix=<B>/` with a `Prefix: <A>/` header, or a repeated
 * `prefix`, listed every tenant's keys. Tenants list their files with GET /storage/files.
 */
export function sessionPolicy(location: TenantStorageLocation): Record<string, unknown> {
  const bucketArn = `arn:aws:s3:::${location.bucket}`;
  if (location.layout === 'bucket') {
    return {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: BUCKET_ACTIONS, Resource: [bucketArn] },
        { Effect: 'Allow', Action: OBJECT_ACTIONS, Resource: [`${bucketArn}/*`] },
      ],
    };
  }
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: ['s3:GetBucketLocation'], Resource: [bucketArn] },
      { Effect: 'Allow', Action: OBJECT_ACTIONS, Resource: [`${bucketArn}/${location.prefix}*`] },
    ],
  };
}

interface AssumeRoleAnswer {
  AssumeRoleResponse?: { AssumeRoleResult?: { Credentials?: { AccessKeyId?: unknown; SecretAccessKey?: unknown; SessionToken?: unknown; Expiration?: unknown } } };
  ErrorResponse?: { Error?: { Code?: unknown; Message?: unknown } };
}

/**
 * STS AssumeRole (the standard API; MinIO serves it on its S3 port and accepts the root
 * credentials with an inline policy). A new session per call: credentials are never shared
 * between callers or tenants.
 */
export class AssumeRoleIssuer implements StsIssuer {
  constructor(private readonly options: { stsEndpoint: string; accessKey: string; secretKey: string; region: string }) {}

  async issue(location: TenantStorageLocation): Promise<TemporaryCredentials> {
    const provider = new AssumeRoleProvider({
      stsEndpoint: this.options.stsEndpoint,
      accessKey: this.options.accessKey,
      secretKey: this.options.secretKey,
      region: this.options.region,
      durationSeconds: STS_DURATION_SECONDS,
      policy: JSON.stringify(sessionPolicy(location)),
    });
    let answer: AssumeRoleAnswer;
    try {
      answer = (await provider.performRequest()) as AssumeRoleAnswer;
    } catch (error) {
      throw new StsError('the STS endpoint did not issue credentials', { cause: error });
    }
    if (answer.ErrorResponse) {
      const { Code, Message } = answer.ErrorResponse.Error ?? {};
      throw new StsError(`the STS endpoint refused: ${String(Code ?? '')} ${String(Message ?? '')}`.trim());
    }
    const issued = answer.AssumeRoleResponse?.AssumeRoleResult?.Credentials;
    if (!issued?.AccessKeyId || !issued.SecretAccessKey || !issued.SessionToken || !issued.Expiration) {
      throw new StsError('the STS endpoint answered without credentials');
    }
    return {
      accessKeyId: String(issued.AccessKeyId),
      secretAccessKey: String(issued.SecretAccessKey),
      sessionToken: String(issued.SessionToken),
      expiration: new Date(String(issued.Expiration)).toISOString(),
    };
  }
}
