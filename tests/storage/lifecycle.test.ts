import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Client as S3Client } from 'minio';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { StorageSettings } from '../../services/shared/src/storage/location.js';
import { ensureBucket, provisionTenantNamespaces, removeTenantNamespaces, type NamespaceStores } from '../../services/shared/src/storage/namespace.js';
import { services } from '../helpers/database.js';
import { aclUser, connectAsTenant, objectVersions, rootS3, tenantCredentials } from './lifecycle-helpers.js';

let redis: Redis;
let s3: S3Client;
const sharedBucket = `lifecycle-shared-${randomUUID().slice(0, 8)}`;
const BUCKET: StorageSettings = { layout: 'bucket', sharedBucket };
const PREFIX: StorageSettings = { layout: 'prefix', sharedBucket };
const stores = (settings: StorageSettings): NamespaceStores => ({ s3, redis, settings });

beforeAll(() => {
  redis = new Redis(services().endpoints.redisUrl);
  s3 = rootS3();
});
afterAll(async () => {
  await redis.quit();
});

async function fillRedis(tenantId: string, count: number): Promise<void> {
  const pipeline = redis.pipeline();
  for (let index = 0; index < count; index += 1) {
    pipeline.set(`tenant:{${tenantId}}:${index % 2 === 0 ? 'app' : 'platform'}:key-${index}`, 'x', 'EX', 600);
  }
  await pipeline.exec();
}

const keysOf = async (tenantId: string) => {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `tenant:{${tenantId}}:*`, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
};

describe('tenant namespaces: provision and remove', () => {
  test('bucket layout: the bucket tenant-<id> and an ACL user on, without a password until one is rotated in; provisioning again changes nothing', async () => {
    const tenantId = randomUUID();
    const made = await provisionTenantNamespaces(stores(BUCKET), tenantId, { enabled: true });
    expect(made).toEqual({ bucket: `tenant-${tenantId}`, bucketCreated: true, redisUser: `tenant-${tenantId}` });
    expect(await s3.bucketExists(`tenant-${tenantId}`)).toBe(true);
    expect(await aclUser(redis, tenantId)).toEqual({ on: true, hasPassword: false });
    // On, but nobody can log in as it: there is no password to give.
    const guessed = await connectAsTenant(services().endpoints.redisUrl, { username: `tenant-${tenantId}`, password: 'anything' });
    expect(guessed).toMatchObject({ refused: expect.stringMatching(/WRONGPASS|NOAUTH|invalid/i) });

    const again = await provisionTenantNamespaces(stores(BUCKET), tenantId, { enabled: true });
    expect(again.bucketCreated).toBe(false);
    await removeTenantNamespaces(stores(BUCKET), tenantId);
  });

  test('concurrent provisioning of one tenant: every call succeeds and one bucket exists', async () => {
    const tenantId = randomUUID();
    const results = await Promise.all(Array.from({ length: 8 }, () => provisionTenantNamespaces(stores(BUCKET), tenantId, { enabled: true })));
    expect(results.filter((result) => result.bucketCreated).length).toBeLessThanOrEqual(1);
    expect(await s3.bucketExists(`tenant-${tenantId}`)).toBe(true);
    expect(await Promise.all(Array.from({ length: 4 }, () => ensureBucket(s3, `tenant-${tenantId}`)))).toEqual([false, false, false, false]);
    await removeTenantNamespaces(stores(BUCKET), tenantId);
  });

  test('prefix layout: no bucket per tenant (the shared one serves all), an ACL user', async () => {
    const tenantId = randomUUID();
    const made = await provisionTenantNamespaces(stores(PREFIX), tenantId, { enabled: true });
    expect(made.bucket).toBe(sharedBucket);
    expect(await s3.bucketExists(`tenant-${tenantId}`)).toBe(false);
    expect(await s3.bucketExists(sharedBucket)).toBe(true);
    expect(await aclUser(redis, tenantId)).toEqual({ on: true, hasPassword: false });
    await removeTenantNamespaces(stores(PREFIX), tenantId);
    expect(await aclUser(redis, tenantId)).toBeNull();
  });

  test('a user provisioned off refuses its credentials until it is provisioned on', async () => {
    const tenantId = randomUUID();
    await provisionTenantNamespaces(stores(BUCKET), tenantId, { enabled: false });
    expect(await aclUser(redis, tenantId)).toMatchObject({ on: false });
    await provisionTenantNamespaces(stores(BUCKET), tenantId, { enabled: true });
    const credentials = await tenantCredentials(redis, tenantId);
    const connected = await connectAsTenant(services().endpoints.redisUrl, credentials);
    expect(connected).toHaveProperty('client');
    if ('client' in connected) connected.client.disconnect();
    await removeTenantNamespaces(stores(BUCKET), tenantId);
  });

  test('bucket layout removal: every version and delete marker, the bucket, the keys and the user; the neighbour keeps all of its own', async () => {
    const [victim, neighbour] = [randomUUID(), randomUUID()];
    for (const tenantId of [victim, neighbour]) {
      await provisionTenantNamespaces(stores(BUCKET), tenantId, { enabled: true });
      const bucket = `tenant-${tenantId}`;
      await s3.setBucketVersioning(bucket, { Status: 'Enabled' });
      await s3.putObject(bucket, 'docs/report.txt', Buffer.from('first'));
      await s3.putObject(bucket, 'docs/report.txt', Buffer.from('second'));
      await s3.putObject(bucket, 'gone.txt', Buffer.from('deleted, a marker remains'));
      await s3.removeObject(bucket, 'gone.txt');
      await fillRedis(tenantId, 700);
    }
    const neighbourVersions = await objectVersions(s3, `tenant-${neighbour}`);
    expect(neighbourVersions).toHaveLength(4);
    const neighbourCredentials = await tenantCredentials(redis, neighbour);

    const removed = await removeTenantNamespaces(stores(BUCKET), victim);
    // 2 keys; 2 versions of one, 1 version and 1 delete marker of the other.
    expect(removed).toEqual({ objects: 2, versions: 4, bucketRemoved: true, redisKeys: 700 });
    expect(await s3.bucketExists(`tenant-${victim}`)).toBe(false);
    expect(await keysOf(victim)).toEqual([]);
    expect(await aclUser(redis, victim)).toBeNull();

    expect(await objectVersions(s3, `tenant-${neighbour}`)).toEqual(neighbourVersions);
    expect(await keysOf(neighbour)).toHaveLength(700);
    const stillIn = await connectAsTenant(services().endpoints.redisUrl, neighbourCredentials);
    expect(stillIn).toHaveProperty('client');
    if ('client' in stillIn) stillIn.client.disconnect();

    // Removing again finds nothing, and says so.
    expect(await removeTenantNamespaces(stores(BUCKET), victim)).toEqual({ objects: 0, versions: 0, bucketRemoved: false, redisKeys: 0 });
    await removeTenantNamespaces(stores(BUCKET), neighbour);
  });

  test('prefix layout removal: every version under <id>/ and nothing of the neighbour next to it in the shared bucket', async () => {
    const [victim, neighbour] = [randomUUID(), randomUUID()];
    await ensureBucket(s3, sharedBucket);
    await s3.setBucketVersioning(sharedBucket, { Status: 'Enabled' });
    for (const tenantId of [victim, neighbour]) {
      await provisionTenantNamespaces(stores(PREFIX), tenantId, { enabled: true });
      await s3.putObject(sharedBucket, `${tenantId}/docs/a.txt`, Buffer.from('one'));
      await s3.putObject(sharedBucket, `${tenantId}/docs/a.txt`, Buffer.from('two'));
      await fillRedis(tenantId, 10);
    }
    const neighbourVersions = await objectVersions(s3, sharedBucket, `${neighbour}/`);
    expect(neighbourVersions).toHaveLength(2);

    const removed = await removeTenantNamespaces(stores(PREFIX), victim);
    expect(removed).toEqual({ objects: 1, versions: 2, bucketRemoved: false, redisKeys: 10 });
    expect(await objectVersions(s3, sharedBucket, `${victim}/`)).toEqual([]);
    expect(await objectVersions(s3, sharedBucket, `${neighbour}/`)).toEqual(neighbourVersions);
    expect(await s3.bucketExists(sharedBucket)).toBe(true);
    expect(await keysOf(neighbour)).toHaveLength(10);
    expect(await aclUser(redis, neighbour)).not.toBeNull();
    await removeTenantNamespaces(stores(PREFIX), neighbour);
  });
});
