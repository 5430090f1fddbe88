/**
 * The storage service against real MinIO, Postgres and Redis, in both layouts: the one
 * bucket per tenant and the shared bucket with a prefix per tenant. Uploads go the way a
 * client outside the network sends them (fetch + FormData to the presigned POST), downloads
 * follow the redirect with plain fetch; S3 and Redis themselves refuse what the scoped
 * credentials must not reach.
 */
import type { Client } from 'minio';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createS3Client, objectKey, tenantStorageLocation, type StorageLayout, type TenantStorageLocation } from '../../services/shared/src/storage/location.js';
import { STORAGE_OPENAPI_DOCUMENT } from '../../services/storage/src/app.js';
import { hex } from '../fixtures/seed.js';
import { services } from '../helpers/database.js';
import {
  committedBytes,
  createStorageTenant,
  fileName,
  postForm,
  REGION,
  sha256Hex,
  startStorageHarness,
  StorageClient,
  uploadStatus,
  type Body,
  type RunningService,
  type StorageHarness,
  type StorageTenant,
} from './harness.js';
import { connectAsTenant } from './lifecycle-helpers.js';

const expectError = (reply: { status: number; body: Body }, status: number, code: string) => {
  expect({ status: reply.status, code: reply.body?.error?.code }).toEqual({ status, code });
  expect(typeof reply.body.error.message).toBe('string');
};

/** Whether `call` is refused by S3 with `code` (AccessDenied, NoSuchKey, …). */
async function s3Refusal(call: () => Promise<unknown>): Promise<string | null> {
  try {
    await call();
    return null;
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

async function listKeys(client: Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of client.listObjectsV2(bucket, prefix, true) as AsyncIterable<{ name?: string }>) if (item.name) keys.push(item.name);
  return keys;
}

const readObject = async (client: Client, bucket: string, key: string): Promise<string> => {
  const stream = await client.getObject(bucket, key);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
};

describe.each(['bucket', 'prefix'] as const)('storage service, %s layout', (layout: StorageLayout) => {
  let h: StorageHarness;
  let a: StorageTenant;
  let b: StorageTenant;
  const location = (tenant: StorageTenant): TenantStorageLocation => tenantStorageLocation(tenant.tenantId, { layout, sharedBucket: h.sharedBucket });
  const as = (tenant: StorageTenant, role: keyof StorageTenant['users'], service: RunningService = h.service) =>
    new StorageClient(service.url, h.token(tenant.users[role], tenant.tenantId, role));

  beforeAll(async () => {
    h = await startStorageHarness(layout);
    [a, b] = await Promise.all([createStorageTenant(h.admin, 'store-a'), createStorageTenant(h.admin, 'store-b')]);
  });
  afterAll(() => h?.close());

  /** Starts an upload of `content` and POSTs it as a browser would; returns the upload's id and what S3 answered. */
  async function upload(client: StorageClient, content: Buffer, { name = fileName('docs'), contentType = 'text/plain', bucket = 'docs' } = {}) {
    const started = await client.startUpload({ bucket, name, size: content.length, contentType, sha256: sha256Hex(content) });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const posted = await postForm(started.body.url, started.body.fields, content);
    return { id: started.body.upload.id as string, name, started, posted };
  }

  async function uploadAndComplete(client: StorageClient, content: Buffer, options: { name?: string; contentType?: string; bucket?: string } = {}) {
    const sent = await upload(client, content, options);
    expect(sent.posted.status, sent.posted.text).toBe(204);
    const completed = await client.complete(sent.id);
    expect(completed.status, JSON.stringify(completed.body)).toBe(200);
    return { ...sent, content, file: completed.body.file };
  }

  test('upload through the presigned POST, complete, list, download (the redirect followed by plain fetch), delete frees the bytes', async () => {
    const member = as(a, 'member');
    const content = Buffer.from(`hello from the ${layout} layout ${hex(8)}`);
    const name = `reports/${hex(4)}/résumé "final".txt`;
    const before = await committedBytes(h.admin, a.tenantId);

    const started = await member.startUpload({ bucket: 'docs', name, size: content.length, contentType: 'text/plain', sha256: sha256Hex(content) });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const where = location(a);
    expect(started.body.url).toBe(`${services().endpoints.s3.endpoint}/${where.bucket}`);
    expect(started.body.fields).toMatchObject({
      bucket: where.bucket,
      key: objectKey(where, 'docs', name),
      'Content-Type': 'text/plain',
      'x-amz-checksum-algorithm': 'SHA256',
      'x-amz-checksum-sha256': Buffer.from(sha256Hex(content), 'hex').toString('base64'),
    });
    expect(started.body.upload).toMatchObject({ bucket: 'docs', name, size: content.length, status: 'pending' });
    expect(new Date(started.body.upload.expiresAt).getTime() - Date.now()).toBeLessThanOrEqual(900_000);
    // Reserved at once.
    expect(await committedBytes(h.admin, a.tenantId)).toBe(before + content.length);

    const posted = await postForm(started.body.url, started.body.fields, content);
    expect(posted.status, posted.text).toBe(204);
    const completed = await member.complete(started.body.upload.id);
    expect(completed.status, JSON.stringify(completed.body)).toBe(200);
    const file = completed.body.file;
    expect(file).toMatchObject({ bucket: 'docs', name, size: content.length, contentType: 'text/plain', sha256: sha256Hex(content), uploadedBy: a.users.member });
    expect(await committedBytes(h.admin, a.tenantId)).toBe(before + content.length);
    expect(await uploadStatus(h.admin, started.body.upload.id)).toBe('completed');

    const listed = await as(a, 'guest').call('GET', `/storage/files?bucket=docs&prefix=${encodeURIComponent(name.slice(0, 13))}`);
    expect(listed.status).toBe(200);
    expect(listed.body.files).toEqual([file]);

    // A guest reads: the redirect, then the S3 server answers the bytes, signed for the public endpoint.
    const redirect = await as(a, 'guest').call('GET', `/storage/files/${file.id}`);
    expect(redirect.status).toBe(302);
    const target = redirect.response.headers.get('location')!;
    expect(target.startsWith(`${services().endpoints.s3.endpoint}/`)).toBe(true);
    expect(Number(new URL(target).searchParams.get('X-Amz-Expires'))).toBeLessThanOrEqual(300);
    const downloaded = await fetch(target);
    expect(downloaded.status).toBe(200);
    expect(Buffer.from(await downloaded.arrayBuffer()).equals(content)).toBe(true);
    expect(downloaded.headers.get('content-disposition')).toBe(`attachment; filename="r_sum_ _final_.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.txt`);
    // The signature covers the request: the same URL for another object is refused.
    expect((await fetch(target.replace(encodeURIComponent('final'), 'other'))).status).toBe(403);

    expect((await as(a, 'guest').call('GET', `/storage/files/${file.id}/meta`)).body).toEqual({ file });

    expect((await member.call('DELETE', `/storage/files/${file.id}`)).status).toBe(204);
    expect(await committedBytes(h.admin, a.tenantId)).toBe(before);
    expect(await s3Refusal(() => h.s3.statObject(where.bucket, objectKey(where, 'docs', name)))).toBe('NotFound');
    expectError(await member.call('GET', `/storage/files/${file.id}/meta`), 404, 'file_not_found');
    expectError(await member.call('DELETE', `/storage/files/${file.id}`), 404, 'file_not_found');
  });

  test('MinIO refuses content other than declared (same size), and a Content-Type other than declared; nothing is recorded', async () => {
    const member = as(a, 'member');
    const content = Buffer.from(`declared ${hex(8)}`);
    const sent = await member.startUpload({ bucket: 'docs', name: fileName('swap'), size: content.length, contentType: 'text/plain', sha256: sha256Hex(content) });
    const swapped = await postForm(sent.body.url, sent.body.fields, Buffer.from(content.toString().replace('declared', 'DECLARED')));
    expect(swapped.status, swapped.text).toBe(400);
    expect(swapped.text).toContain('XAmzContentChecksumMismatch');
    expectError(await member.complete(sent.body.upload.id), 409, 'upload_not_found_in_storage');

    const started = await member.startUpload({ bucket: 'docs', name: fileName('type'), size: content.length, contentType: 'text/plain', sha256: sha256Hex(content) });
    const wrongType = await postForm(started.body.url, started.body.fields, content, { 'Content-Type': 'text/html' });
    expect(wrongType.status, wrongType.text).toBe(403);
    expect(wrongType.text).toMatch(/Policy|condition/i);
    expectError(await member.complete(started.body.upload.id), 409, 'upload_not_found_in_storage');
    // A size other than the policy's exact one is refused too.
    const longer = await postForm(started.body.url, started.body.fields, Buffer.concat([content, Buffer.from('!')]));
    expect(longer.status, longer.text).toBe(400);
    expect(longer.text).toMatch(/EntityTooLarge|too large/i);
  });

  test('an object that differs from the declared one when completed (put past the policy) is refused and removed, its bytes freed', async () => {
    const member = as(a, 'member');
    const where = location(a);
    const before = await committedBytes(h.admin, a.tenantId);
    for (const stored of [Buffer.from('a different size entirely'), Buffer.from('same size, other bytes!')]) {
      const declared = Buffer.from('same size, the bytes!!!');
      const name = fileName('differs');
      const started = await member.startUpload({ bucket: 'docs', name, size: declared.length, contentType: 'text/plain', sha256: sha256Hex(declared) });
      expect(started.status).toBe(201);
      await h.s3.putObject(where.bucket, objectKey(where, 'docs', name), stored);
      const refused = await member.complete(started.body.upload.id);
      expectError(refused, 422, 'upload_mismatch');
      expect(await s3Refusal(() => h.s3.statObject(where.bucket, objectKey(where, 'docs', name)))).toBe('NotFound');
      expect(await uploadStatus(h.admin, started.body.upload.id)).toBe('refused');
      expectError(await member.complete(started.body.upload.id), 409, 'upload_refused');
    }
    expect(await committedBytes(h.admin, a.tenantId)).toBe(before);
  });

  test('a second complete is refused; an upload of a name in progress or taken is refused and counts nothing', async () => {
    const member = as(a, 'member');
    const content = Buffer.from(`twice ${hex(8)}`);
    const done = await uploadAndComplete(member, content);
    expectError(await member.complete(done.id), 409, 'upload_already_completed');

    const before = await committedBytes(h.admin, a.tenantId);
    const request = { bucket: 'docs', name: done.name, size: content.length, contentType: 'text/plain', sha256: sha256Hex(content) };
    expectError(await member.startUpload(request), 409, 'file_exists');
    const pendingName = fileName('pending');
    expect((await member.startUpload({ ...request, name: pendingName })).status).toBe(201);
    const held = await member.startUpload({ ...request, name: pendingName });
    expectError(held, 409, 'upload_in_progress');
    expect(held.body.error.message).toMatch(/in progress until \d{4}-/);
    expect(await committedBytes(h.admin, a.tenantId)).toBe(before + content.length);
  });

  test('an empty file goes the same way (a policy for exactly 0 bytes)', async () => {
    const member = as(a, 'member');
    const done = await uploadAndComplete(member, Buffer.alloc(0), { contentType: 'application/octet-stream' });
    expect(done.file).toMatchObject({ size: 0, sha256: sha256Hex('') });
    const target = (await member.call('GET', `/storage/files/${done.file.id}`)).response.headers.get('location')!;
    const downloaded = await fetch(target);
    expect(downloaded.status).toBe(200);
    expect((await downloaded.arrayBuffer()).byteLength).toBe(0);
  });

  test('an expired policy is refused by MinIO, and its upload cannot be completed', { retry: 2 }, async () => {
    const shortLived = await h.startService({ uploadTtlSeconds: 2 });
    const member = as(a, 'member', shortLived);
    const content = Buffer.from(`late ${hex(8)}`);
    const request = { bucket: 'docs', name: fileName('late'), size: content.length, contentType: 'text/plain', sha256: sha256Hex(content) };
    const started = await member.startUpload(request);
    expect(started.status).toBe(201);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    // The name stays held until the sweeper frees it, and the refusal says so.
    const again = await member.startUpload(request);
    expectError(again, 409, 'upload_in_progress');
    expect(again.body.error.message).toContain('expired');
    const posted = await postForm(started.body.url, started.body.fields, content);
    expect(posted.status, posted.text).toBe(403);
    expect(posted.text).toMatch(/expired/i);
    expectError(await member.complete(started.body.upload.id), 410, 'upload_expired');
  });

  test('20 concurrent uploads that together exceed the storage limit: only those that fit get a URL', async () => {
    const tight = await createStorageTenant(h.admin, 'store-tight', { maxStorageBytes: 10_000 });
    const member = as(tight, 'member');
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        member.startUpload({ bucket: 'burst', name: `file-${index}.bin`, size: 1_000, contentType: 'application/octet-stream', sha256: 'ab'.repeat(32) }),
      ),
    );
    const granted = replies.filter((reply) => reply.status === 201);
    expect(granted.length).toBe(10);
    for (const reply of replies.filter((one) => one.status !== 201)) expectError(reply, 409, 'storage_limit_exceeded');
    for (const reply of granted) expect(reply.body.url).toBeTypeOf('string');
    expect(replies.find((reply) => reply.status !== 201)!.body.error.message).toContain('10000 bytes');
    expect(await committedBytes(h.admin, tight.tenantId)).toBe(10_000);
  });

  test("bad input is refused with a clear 4xx, and nothing is recorded or counted: traversal, control characters, the plan's single-file limit", async () => {
    const free = await createStorageTenant(h.admin, 'store-free', { plan: 'free' });
    const member = as(free, 'member');
    const valid = { bucket: 'docs', name: 'ok.txt', size: 10, contentType: 'text/plain', sha256: 'ab'.repeat(32) };
    const names = ['../etc/passwd', 'a/../../b', './a', 'a/./b', '/absolute', 'a//b', 'trailing/', 'tab\there', 'nul\u0000', 'del\u007f', 'back\\slash', 'x'.repeat(1025), `long/${'a'.repeat(256)}`, '', '\ud800'];
    for (const name of names) expectError(await member.startUpload({ ...valid, name }), 422, 'validation_failed');
    for (const [field, value] of [
      ['bucket', 'Not_A_Bucket'],
      ['bucket', '../x'],
      ['contentType', 'text plain'],
      ['contentType', 'text/plain\r\nX-Evil: 1'],
      ['sha256', Buffer.alloc(32).toString('base64')],
      ['size', -1],
      ['size', 1.5],
    ] as const) {
      expectError(await member.startUpload({ ...valid, [field]: value }), 422, 'validation_failed');
    }
    // The S3 key (prefix, bucket, name) must fit S3's 1024 bytes, whatever the layout.
    expectError(await member.startUpload({ ...valid, bucket: 'b'.repeat(63), name: 'n'.repeat(1000) }), 422, 'validation_failed');
    // The free plan's single-file limit is 25 MiB.
    const tooLarge = await member.startUpload({ ...valid, size: 25 * 1024 * 1024 + 1 });
    expectError(tooLarge, 413, 'file_too_large');
    expect(tooLarge.body.error.message).toContain('26214400');
    const { rows } = await h.admin.query('SELECT count(*)::int AS uploads FROM file_uploads WHERE tenant_id = $1', [free.tenantId]);
    expect(rows[0].uploads).toBe(0);
    expect(await committedBytes(h.admin, free.tenantId)).toBe(0);
    // Above what S3 takes in one POST, whatever the plan.
    const enterprise = await createStorageTenant(h.admin, 'store-ent', { plan: 'enterprise' });
    const huge = await as(enterprise, 'member').startUpload({ ...valid, size: 5 * 1024 ** 3 + 1 });
    expectError(huge, 413, 'file_too_large');
    expect(huge.body.error.message).toContain('5368709120');
    expect(await committedBytes(h.admin, enterprise.tenantId)).toBe(0);
    // Exactly at the limit is accepted.
    expect((await member.startUpload({ ...valid, size: 25 * 1024 * 1024 })).status).toBe(201);
  });

  test('guests read and cannot upload; members upload; credentials are for admins and owners; a suspended tenant is refused', async () => {
    const request = { bucket: 'docs', name: fileName('roles'), size: 3, contentType: 'text/plain', sha256: sha256Hex('abc') };
    expect((await as(a, 'guest').call('GET', '/storage/files')).status).toBe(200);
    expectError(await as(a, 'guest').startUpload(request), 403, 'forbidden');
    const readOnly = new StorageClient(h.service.url, h.token(a.users.owner, a.tenantId, 'owner', { readOnly: true }));
    expectError(await readOnly.startUpload(request), 403, 'forbidden');
    expect((await as(a, 'member').startUpload(request)).status).toBe(201);
    for (const role of ['member', 'guest'] as const) expectError(await as(a, role).call('POST', '/storage/credentials', { kind: 'redis' }), 403, 'forbidden');
    expect((await as(a, 'admin').call('POST', '/storage/credentials', { kind: 'redis' })).status).toBe(200);
    expectError(await as(a, 'owner').call('POST', '/storage/credentials', { kind: 'ftp' }), 422, 'validation_failed');
    // A token of A with B's tenant header, and no token at all.
    const mismatched = await fetch(`${h.service.url}/storage/files`, { headers: { Authorization: `Bearer ${h.token(a.users.owner, a.tenantId, 'owner')}`, 'X-Tenant-Id': b.tenantId } });
    expect(mismatched.status).toBe(403);
    expect((await fetch(`${h.service.url}/storage/files`)).status).toBe(401);

    const suspended = await createStorageTenant(h.admin, 'store-susp');
    await h.admin.query("UPDATE tenants SET status = 'suspended', suspension_reason = 'abuse' WHERE id = $1", [suspended.tenantId]);
    expectError(await as(suspended, 'owner').call('GET', '/storage/files'), 403, 'tenant_suspended');
    expectError(await as(suspended, 'owner').call('POST', '/storage/credentials', { kind: 's3' }), 403, 'tenant_suspended');
  });

  test("A's token cannot complete, download, read or delete B's uploads and files (404, as if they did not exist)", async () => {
    const content = Buffer.from(`b's ${hex(8)}`);
    const bFile = await uploadAndComplete(as(b, 'member'), content);
    const bPending = await upload(as(b, 'member'), Buffer.from('pending of b'), { name: fileName('b-pending') });
    const owner = as(a, 'owner');
    expectError(await owner.complete(bPending.id), 404, 'upload_not_found');
    expectError(await owner.call('GET', `/storage/files/${bFile.file.id}`), 404, 'file_not_found');
    expectError(await owner.call('GET', `/storage/files/${bFile.file.id}/meta`), 404, 'file_not_found');
    expectError(await owner.call('DELETE', `/storage/files/${bFile.file.id}`), 404, 'file_not_found');
    const listed = await owner.call('GET', '/storage/files?limit=1000');
    expect(listed.body.files.map((file: { id: string }) => file.id)).not.toContain(bFile.file.id);
    // Still B's, untouched.
    expect((await as(b, 'guest').call('GET', `/storage/files/${bFile.file.id}/meta`)).status).toBe(200);
    expect(await uploadStatus(h.admin, bPending.id)).toBe('pending');
  });

  test('the listing pages by cursor, in order, and refuses a cursor it did not give', async () => {
    const tenant = await createStorageTenant(h.admin, 'store-pages');
    const names = ['a.txt', 'b/1.txt', 'b/2.txt', 'c.txt', 'd.txt'];
    for (const [bucket, name] of [...names.map((name) => ['pages', name]), ['other', 'z.txt']] as const) {
      await h.admin.query(`INSERT INTO files (tenant_id, bucket, name, size, content_type, sha256) VALUES ($1, $2, $3, 1, 'text/plain', $4)`, [tenant.tenantId, bucket, name, 'cd'.repeat(32)]);
    }
    const guest = as(tenant, 'guest');
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { status: number; body: Body } = await guest.call('GET', `/storage/files?bucket=pages&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.files.map((file: { name: string }) => file.name));
      cursor = page.body.nextCursor;
      pages += 1;
    } while (cursor);
    expect(seen).toEqual(names);
    expect(pages).toBe(3);
    expect((await guest.call('GET', '/storage/files?prefix=b/')).body.files.map((file: { name: string }) => file.name)).toEqual(['b/1.txt', 'b/2.txt']);
    expect((await guest.call('GET', '/storage/files')).body.files).toHaveLength(6);
    expectError(await guest.call('GET', '/storage/files?cursor=bm90LWEtY3Vyc29y'), 422, 'validation_failed');
    expectError(await guest.call('GET', '/storage/files?limit=1001'), 422, 'validation_failed');
  });

  test("S3 credentials read and list the tenant's own objects only: MinIO refuses listing, reading and writing B's, and writing its own", async () => {
    const owner = as(a, 'owner');
    const issued = await owner.call('POST', '/storage/credentials', { kind: 's3' });
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    const mine = location(a);
    const theirs = location(b);
    expect(issued.body).toMatchObject({ kind: 's3', endpoint: services().endpoints.s3.endpoint, region: REGION, bucket: mine.bucket, prefix: mine.prefix });
    const lifetime = new Date(issued.body.expiration).getTime() - Date.now();
    expect(lifetime).toBeGreaterThan(0);
    expect(lifetime).toBeLessThanOrEqual(900_000 + 5_000);
    const scoped = createS3Client(issued.body.endpoint, { accessKey: issued.body.accessKeyId, secretKey: issued.body.secretAccessKey, sessionToken: issued.body.sessionToken, region: REGION });

    // B's objects exist (the root puts one), A's credentials reach none of them.
    await h.s3.makeBucket(theirs.bucket).catch(() => undefined);
    const theirKey = objectKey(theirs, 'docs', `secret-${hex(4)}.txt`);
    await h.s3.putObject(theirs.bucket, theirKey, 'b only');
    expect(await s3Refusal(() => readObject(scoped, theirs.bucket, theirKey))).toBe('AccessDenied');
    expect(await s3Refusal(() => scoped.putObject(theirs.bucket, objectKey(theirs, 'docs', 'planted.txt'), 'from a'))).toBe('AccessDenied');
    expect(await s3Refusal(() => scoped.removeObject(theirs.bucket, theirKey))).toBe('AccessDenied');
    expect(await s3Refusal(() => listKeys(scoped, theirs.bucket, theirs.prefix))).toBe('AccessDenied');
    if (layout === 'prefix') {
      // The shared bucket: neither the whole listing nor a prefix that is not A's own.
      expect(await s3Refusal(() => listKeys(scoped, mine.bucket, ''))).toBe('AccessDenied');
      expect(await s3Refusal(() => listKeys(scoped, mine.bucket, theirs.prefix))).toBe('AccessDenied');
    }
    expect(await readObject(h.s3, theirs.bucket, theirKey)).toBe('b only');
    expect(await s3Refusal(() => h.s3.statObject(theirs.bucket, objectKey(theirs, 'docs', 'planted.txt')))).toBe('NotFound');

    // A's own: read and list. Writing and deleting are refused even there: only presigned
    // uploads, which the storage limit binds, put bytes in a tenant's namespace.
    await h.s3.makeBucket(mine.bucket).catch(() => undefined);
    const ownKey = objectKey(mine, 'sts', `mine-${hex(4)}.txt`);
    await h.s3.putObject(mine.bucket, ownKey, 'a reads');
    expect(await readObject(scoped, mine.bucket, ownKey)).toBe('a reads');
    if (layout === 'bucket') expect(await listKeys(scoped, mine.bucket, `${mine.prefix}sts/`)).toContain(ownKey);
    else expect(await s3Refusal(() => listKeys(scoped, mine.bucket, mine.prefix))).toBe('AccessDenied');
    expect(await s3Refusal(() => scoped.putObject(mine.bucket, objectKey(mine, 'sts', 'unbounded.bin'), 'past the limit'))).toBe('AccessDenied');
    expect(await s3Refusal(() => scoped.removeObject(mine.bucket, ownKey))).toBe('AccessDenied');
    expect(await readObject(h.s3, mine.bucket, ownKey)).toBe('a reads');

    const audited = await h.admin.query("SELECT actor_user_id, target_id FROM audit_log WHERE tenant_id = $1 AND action = 'storage.credentials_issued' AND target_type = 's3_session'", [a.tenantId]);
    expect(audited.rows).toContainEqual({ actor_user_id: a.users.owner, target_id: issued.body.accessKeyId });
  });

  test('without STS the S3 kind answers 501 and says so', async () => {
    const noSts = await h.startService({ sts: false });
    const reply = await as(a, 'owner', noSts).call('POST', '/storage/credentials', { kind: 's3' });
    expectError(reply, 501, 'sts_not_available');
    expect(reply.body.error.message).toContain('STS');
  });

  test("Redis credentials work with AUTH for the tenant's app keys and nothing of B's", async () => {
    const issued = await as(a, 'admin').call('POST', '/storage/credentials', { kind: 'redis' });
    expect(issued.status).toBe(200);
    expect(issued.body).toMatchObject({ kind: 'redis', username: `tenant-${a.tenantId}`, keyPrefix: `tenant:{${a.tenantId}}:app:`, channelPrefix: `tenant:{${a.tenantId}}:app:` });
    const connected = await connectAsTenant(services().endpoints.redisUrl, issued.body);
    if (!('client' in connected)) throw new Error(`refused: ${connected.refused}`);
    const { client } = connected;
    try {
      await client.set(`${issued.body.keyPrefix}greeting`, 'hello');
      expect(await client.get(`${issued.body.keyPrefix}greeting`)).toBe('hello');
      await expect(client.get(`tenant:{${b.tenantId}}:app:greeting`)).rejects.toThrow(/NOPERM/);
      await expect(client.get(`tenant:{${a.tenantId}}:platform:quota`)).rejects.toThrow(/NOPERM/);
    } finally {
      client.disconnect();
    }
    // A new rotation replaces the password for new logins.
    await as(a, 'owner').call('POST', '/storage/credentials', { kind: 'redis' });
    expect('refused' in (await connectAsTenant(services().endpoints.redisUrl, issued.body))).toBe(true);
  });

  test('health and the OpenAPI document', async () => {
    expect((await fetch(`${h.service.url}/healthz`)).status).toBe(200);
    const document = (await (await fetch(`${h.service.url}/storage/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(document).toEqual(STORAGE_OPENAPI_DOCUMENT);
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/storage/uploads', '/storage/uploads/{id}/complete', '/storage/files', '/storage/files/{id}', '/storage/files/{id}/meta', '/storage/credentials']),
    );
  });
});
