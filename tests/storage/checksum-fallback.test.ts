/**
 * Completing an upload on an S3 server that reports no SHA-256 for the object. MinIO stores
 * none for an object put without a checksum (here, with the root credentials, as an S3
 * server without checksum support stores every object): HEAD with x-amz-checksum-mode
 * answers no x-amz-checksum-sha256, and the service reads the bytes to check them.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { objectKey, tenantStorageLocation, type StorageLayout } from '../../services/shared/src/storage/location.js';
import { hex } from '../fixtures/seed.js';
import { createStorageTenant, fileName, sha256Hex, startStorageHarness, StorageClient, uploadStatus, type StorageHarness, type StorageTenant } from './harness.js';

describe.each(['bucket', 'prefix'] as const)('completion without a stored checksum, %s layout', (layout: StorageLayout) => {
  let h: StorageHarness;
  let tenant: StorageTenant;
  let member: StorageClient;
  beforeAll(async () => {
    h = await startStorageHarness(layout);
    tenant = await createStorageTenant(h.admin, 'checksum');
    member = new StorageClient(h.service.url, h.token(tenant.users.member, tenant.tenantId, 'member'));
  });
  afterAll(() => h?.close());

  /** Starts an upload of `declared`, then puts `stored` at its key without a checksum. */
  async function putWithoutChecksum(declared: Buffer, stored: Buffer) {
    const name = fileName('no-checksum');
    const started = await member.startUpload({ bucket: 'docs', name, size: declared.length, contentType: 'text/plain', sha256: sha256Hex(declared) });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const where = tenantStorageLocation(tenant.tenantId, { layout, sharedBucket: h.sharedBucket });
    const key = objectKey(where, 'docs', name);
    await h.s3.putObject(where.bucket, key, stored, stored.length, { 'Content-Type': 'text/plain' });
    // The case is real: the S3 server reports the size and no SHA-256.
    expect(await h.service.deps.objects.stat(where.bucket, key)).toEqual({ size: stored.length, sha256Base64: null });
    return { id: started.body.upload.id as string, bucket: where.bucket, key };
  }

  test('the right bytes are read and hashed, and the file is recorded', async () => {
    const content = Buffer.from(`unchecked by S3 ${hex(8)}`);
    const upload = await putWithoutChecksum(content, content);
    const completed = await member.complete(upload.id);
    expect(completed.status, JSON.stringify(completed.body)).toBe(200);
    expect(completed.body.file).toMatchObject({ size: content.length, sha256: sha256Hex(content) });
    expect(await uploadStatus(h.admin, upload.id)).toBe('completed');
    expect((await h.s3.statObject(upload.bucket, upload.key)).size).toBe(content.length);
  });

  test('other bytes of the declared size are refused, and the object removed', async () => {
    const declared = Buffer.from(`declared ${hex(8)}`);
    const upload = await putWithoutChecksum(declared, Buffer.alloc(declared.length, 'x'));
    const refused = await member.complete(upload.id);
    expect({ status: refused.status, code: refused.body?.error?.code }).toEqual({ status: 422, code: 'upload_mismatch' });
    expect(refused.body.error.message).toContain('SHA-256 differs');
    expect(await uploadStatus(h.admin, upload.id)).toBe('refused');
    await expect(h.s3.statObject(upload.bucket, upload.key)).rejects.toMatchObject({ code: 'NotFound' });
  });
});
