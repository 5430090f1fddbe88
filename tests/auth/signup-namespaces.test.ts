import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildAuthApp } from '../../services/auth/src/app.js';
import { createS3Client } from '../../services/shared/src/storage/location.js';
import { removeTenantNamespaces } from '../../services/shared/src/storage/namespace.js';
import { aclUser, connectAsTenant, rootS3 } from '../storage/lifecycle-helpers.js';
import { services } from '../helpers/database.js';
import { PASSWORD, signUp, startHarness, uniqueEmail, uniqueSlug, type Harness } from './harness.js';

let bucketLayout: Harness;
let prefixLayout: Harness;
const sharedBucket = `signup-shared-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  [bucketLayout, prefixLayout] = await Promise.all([startHarness(), startHarness({ storage: { layout: 'prefix', sharedBucket } })]);
});
afterAll(async () => {
  await Promise.all([bucketLayout?.close(), prefixLayout?.close()]);
});

describe.concurrent('signup makes the new tenant its namespaces', () => {
  test('bucket layout: the bucket tenant-<id> and a Redis ACL user, on, that nobody can log in as until credentials are issued', async () => {
    const signedUp = await signUp(bucketLayout.app, 'ns-bucket');
    const tenantId = signedUp.tenantId!;
    expect(await rootS3().bucketExists(`tenant-${tenantId}`)).toBe(true);
    expect(await aclUser(bucketLayout.redis, tenantId)).toEqual({ on: true, hasPassword: false });
    expect(await connectAsTenant(services().endpoints.redisUrl, { username: `tenant-${tenantId}`, password: PASSWORD })).toMatchObject({
      refused: expect.any(String),
    });
    await removeTenantNamespaces(bucketLayout.deps.namespaces!, tenantId);
  });

  test('prefix layout: no bucket of its own, the Redis user all the same', async () => {
    const signedUp = await signUp(prefixLayout.app, 'ns-prefix');
    const tenantId = signedUp.tenantId!;
    expect(await rootS3().bucketExists(`tenant-${tenantId}`)).toBe(false);
    expect(await rootS3().bucketExists(sharedBucket)).toBe(true);
    expect(await aclUser(prefixLayout.redis, tenantId)).toEqual({ on: true, hasPassword: false });
    await removeTenantNamespaces(prefixLayout.deps.namespaces!, tenantId);
  });

  test('S3 unreachable: the signup still succeeds (the tenant exists), the Redis user is made, the failure is logged for the keeper to repair', async () => {
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
    const broken = buildAuthApp({
      ...bucketLayout.deps,
      logger,
      namespaces: {
        ...bucketLayout.deps.namespaces!,
        s3: createS3Client('http://127.0.0.1:1', { accessKey: 'x', secretKey: 'y', region: 'us-east-1' }),
      },
    });
    const slug = uniqueSlug('ns-s3-down');
    const response = await request(broken)
      .post('/auth/signup')
      .send({ email: uniqueEmail('ns-s3-down'), password: PASSWORD, tenant: { slug, name: 'S3 down' } })
      .expect(201);
    const tenantId = (response.body as { tenant: { id: string } }).tenant.id;
    const { rows } = await bucketLayout.admin.query(`SELECT status FROM tenants WHERE id = $1`, [tenantId]);
    expect(rows).toEqual([{ status: 'active' }]);
    expect(await rootS3().bucketExists(`tenant-${tenantId}`)).toBe(false);
    expect(await aclUser(bucketLayout.redis, tenantId)).toMatchObject({ on: true });
    const warning = warnings.map((line) => JSON.parse(line) as { tenantId?: string; msg: string }).find((entry) => entry.tenantId === tenantId);
    expect(warning?.msg).toMatch(/namespace keeper/);
    await removeTenantNamespaces(bucketLayout.deps.namespaces!, tenantId);
  });
});
