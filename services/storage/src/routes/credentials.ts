import type { Request } from 'express';
import { z } from 'zod';
import { fail } from '../../../shared/src/errors/catalog.js';
import { rotateTenantRedisPassword } from '../../../shared/src/redis-acl.js';
import { tenantAppPrefix } from '../../../shared/src/tenancy.js';
import { inCallerTenant, storageCaller, type StorageCaller } from '../access.js';
import type { StorageDependencies } from '../deps.js';
import { defineOperation } from '../http.js';
import { StsError } from '../sts.js';

const credentialsRequest = z.object({
  kind: z.enum(['s3', 'redis']).describe("s3: temporary read-only S3 credentials (STS); redis: a new password of the tenant's Redis ACL user"),
});

const s3Credentials = z.object({
  kind: z.literal('s3'),
  accessKeyId: z.string(),
  secretAccessKey: z.string(),
  sessionToken: z.string(),
  expiration: z.string().describe('ISO 8601; at most 15 minutes away'),
  endpoint: z.string().describe('the S3 endpoint to use them with (path-style addressing)'),
  region: z.string(),
  bucket: z.string(),
  prefix: z.string().describe("every key must start with this ('' in the bucket layout, '<tenant-id>/' in the prefix layout)"),
});

const redisCredentials = z.object({
  kind: z.literal('redis'),
  username: z.string(),
  password: z.string().describe('replaces the previous password for new logins'),
  keyPrefix: z.string().describe('every key must start with this'),
  channelPrefix: z.string().describe('every channel must start with this'),
});

/** One audit entry in the tenant per issuance (never the secret), written as the caller. */
async function audit(deps: StorageDependencies, caller: StorageCaller, req: Request, kind: 's3' | 'redis', targetId: string): Promise<void> {
  await inCallerTenant(deps, caller, (client) =>
    client.query({
      name: 'storage-credentials-audit',
      text: `INSERT INTO audit_log (tenant_id, actor_user_id, action, target_type, target_id, request_id) VALUES ($1, $2, $3, $4, $5, $6)`,
      values: [caller.tenantId, caller.userId, 'storage.credentials_issued', kind === 's3' ? 's3_session' : 'redis_user', targetId, req.get('x-request-id') ?? null],
    }),
  );
}

export const issueCredentials = defineOperation({
  method: 'post',
  path: '/storage/credentials',
  summary:
    "Credentials that reach this tenant's namespace only, checked by the S3 server or Redis themselves (storage:credentials: owners and admins). s3: STS AssumeRole with a session policy that reads and lists the tenant's bucket or prefix only, for 15 minutes (writes go through uploads, which the storage limit binds) (501 where the S3 server has no STS). redis: a new password of the tenant's ACL user (keys and channels under its app prefix), for apps inside the deployment's network.",
  tag: 'credentials',
  auth: 'token',
  body: credentialsRequest,
  responses: {
    200: { description: 'the credentials', schema: z.discriminatedUnion('kind', [s3Credentials, redisCredentials]) },
    403: { description: 'missing storage:credentials, or the tenant is not active' },
    501: { description: 'sts_not_available: the S3 server has no STS configured' },
    503: { description: 'storage_unavailable or unavailable: the STS endpoint or Redis did not answer' },
  },
  async handler(context) {
    const caller = await storageCaller(context, 'storage:credentials');
    const { deps, body, log, req } = context;
    if (body.kind === 's3') {
      if (!deps.sts) throw fail('sts_not_available');
      const location = deps.objects.location(caller.tenantId);
      let issued;
      try {
        issued = await deps.sts.issue(location);
      } catch (error) {
        if (!(error instanceof StsError)) throw error;
        log.error({ err: error, tenantId: caller.tenantId }, 'STS did not issue credentials');
        throw fail('storage_unavailable', "the S3 server's STS did not issue credentials; try again");
      }
      await audit(deps, caller, req, 's3', issued.accessKeyId);
      log.info({ tenantId: caller.tenantId, userId: caller.userId, accessKeyId: issued.accessKeyId, expiration: issued.expiration }, 'S3 credentials issued');
      return {
        body: {
          kind: 's3',
          ...issued,
          endpoint: deps.objects.publicEndpoint,
          region: deps.objects.region,
          bucket: location.bucket,
          prefix: location.prefix,
        } satisfies z.infer<typeof s3Credentials>,
      };
    }
    const { username, password } = await rotateTenantRedisPassword(deps.redis, caller.tenantId);
    await audit(deps, caller, req, 'redis', username);
    log.info({ tenantId: caller.tenantId, userId: caller.userId, username }, 'Redis password rotated');
    const prefix = tenantAppPrefix(caller.tenantId);
    return { body: { kind: 'redis', username, password, keyPrefix: prefix, channelPrefix: prefix } satisfies z.infer<typeof redisCredentials> };
  },
});
