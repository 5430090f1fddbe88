import { once } from 'node:events';
import { Redis } from 'ioredis';
import type { Client as S3Client } from 'minio';
import { rotateTenantRedisPassword, tenantRedisUsername } from '../../services/shared/src/redis-acl.js';
import { createS3Client } from '../../services/shared/src/storage/location.js';
import { services } from '../helpers/database.js';

/** The root S3 client of the test MinIO. */
export function rootS3(): S3Client {
  const { endpoint, accessKey, secretKey } = services().endpoints.s3;
  return createS3Client(endpoint, { accessKey, secretKey, region: 'us-east-1' });
}

/** A tenant's Redis ACL user as Redis itself reports it, or null when there is none. */
export async function aclUser(redis: Redis, tenantId: string): Promise<{ on: boolean; hasPassword: boolean } | null> {
  const reply = (await redis.call('ACL', 'GETUSER', tenantRedisUsername(tenantId))) as unknown[] | null;
  if (reply === null) return null;
  const fields = new Map<string, unknown>();
  for (let index = 0; index + 1 < reply.length; index += 2) fields.set(String(reply[index]), reply[index + 1]);
  const flags = (fields.get('flags') as string[]).map(String);
  const passwords = (fields.get('passwords') as unknown[]) ?? [];
  return { on: flags.includes('on'), hasPassword: passwords.length > 0 || flags.includes('nopass') };
}

/** Where a Redis URL points, without its user. */
function redisAddress(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || 6379) };
}

/** A connection as the tenant's ACL user, or the reason Redis refused it. */
export async function connectAsTenant(
  redisUrl: string,
  credentials: { username: string; password: string },
): Promise<{ client: Redis } | { refused: string }> {
  const client = new Redis({
    ...redisAddress(redisUrl),
    username: credentials.username,
    password: credentials.password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
    // INFO is not the tenant user's to run.
    enableReadyCheck: false,
  });
  // A refused AUTH arrives as an 'error' event; connect() then only says the connection closed.
  let reason: string | undefined;
  client.on('error', (error: Error) => (reason ??= error.message));
  try {
    await client.connect();
    await client.ping();
    return { client };
  } catch (error) {
    client.disconnect();
    return { refused: reason ?? (error as Error).message };
  }
}

/** A tenant user's credentials, as POST /storage/credentials {kind: 'redis'} hands them out. */
export const tenantCredentials = (redis: Redis, tenantId: string) => rotateTenantRedisPassword(redis, tenantId);

/** Milliseconds until the server closes `client`'s connection (rejects after `withinMs`). */
export async function closedWithin(client: Redis, withinMs: number, change: () => Promise<unknown>): Promise<number> {
  const started = Date.now();
  const closed = once(client, 'end');
  await change();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      closed,
      new Promise((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`the connection was still open ${withinMs} ms after the change`)), withinMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
  return Date.now() - started;
}

/** Every version of every object under `prefix`, as `name@version`. */
export async function objectVersions(s3: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  const found: string[] = [];
  const listing = s3.listObjects(bucket, prefix, true, { IncludeVersion: true }) as AsyncIterable<{ name?: string; versionId?: string }>;
  for await (const item of listing) if (item.name) found.push(`${item.name}@${item.versionId ?? 'null'}`);
  return found.sort();
}
