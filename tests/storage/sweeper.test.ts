/**
 * The expired-upload sweeper, on a database of its own: it takes every tenant's due
 * uploads, and the shared test database has other suites' uploads it must not touch.
 */
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { objectKey, tenantStorageLocation, type StorageLayout } from '../../services/shared/src/storage/location.js';
import { startUploadSweeper } from '../../services/storage/src/sweeper.js';
import { hex } from '../fixtures/seed.js';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/database.js';
import { committedBytes, createStorageTenant, fileName, postForm, sha256Hex, startStorageHarness, StorageClient, uploadStatus, type StorageHarness } from './harness.js';

let scratch: ScratchDatabase;
beforeAll(async () => {
  scratch = await createScratchDatabase({ migrated: true });
});
afterAll(() => scratch?.drop());

describe.each(['bucket', 'prefix'] as const)('upload sweeper, %s layout', (layout: StorageLayout) => {
  let h: StorageHarness;
  let pool: pg.Pool;
  let admin: pg.Pool;
  beforeAll(async () => {
    h = await startStorageHarness(layout);
    pool = new pg.Pool({ connectionString: scratch.url('app_service'), max: 4 });
    admin = new pg.Pool({ connectionString: scratch.url('platform_admin'), max: 2 });
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([pool?.end(), admin?.end()]);
  });

  test("an upload never completed loses its object and frees its bytes; a completed file's object stays", { retry: 2 }, async () => {
    const tenant = await createStorageTenant(admin, 'sweep');
    const service = await h.startService({ pool });
    const shortLived = await h.startService({ pool, uploadTtlSeconds: 2 });
    const member = new StorageClient(service.url, h.token(tenant.users.member, tenant.tenantId, 'member'));
    const hasty = new StorageClient(shortLived.url, h.token(tenant.users.member, tenant.tenantId, 'member'));
    const where = tenantStorageLocation(tenant.tenantId, { layout, sharedBucket: h.sharedBucket });

    // A file completed in time.
    const kept = Buffer.from(`kept ${hex(8)}`);
    const keptName = fileName('kept');
    const keptStart = await member.startUpload({ bucket: 'docs', name: keptName, size: kept.length, contentType: 'text/plain', sha256: sha256Hex(kept) });
    expect((await postForm(keptStart.body.url, keptStart.body.fields, kept)).status).toBe(204);
    expect((await member.complete(keptStart.body.upload.id)).status).toBe(200);

    // An upload whose object arrived, never completed.
    const abandoned = Buffer.from(`abandoned ${hex(8)}`);
    const abandonedName = fileName('abandoned');
    const started = await hasty.startUpload({ bucket: 'docs', name: abandonedName, size: abandoned.length, contentType: 'text/plain', sha256: sha256Hex(abandoned) });
    expect(started.status).toBe(201);
    expect((await postForm(started.body.url, started.body.fields, abandoned)).status).toBe(204);
    expect(await committedBytes(admin, tenant.tenantId)).toBe(kept.length + abandoned.length);

    const sweeper = startUploadSweeper({ pool, objects: service.deps.objects, logger: pino({ level: 'silent' }), intervalMs: 3_600_000, graceSeconds: 0 });
    try {
      // Not due while its policy holds.
      expect(await sweeper.sweep()).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect(await sweeper.sweep()).toBe(1);
    } finally {
      await sweeper.stop();
    }
    expect(await uploadStatus(admin, started.body.upload.id)).toBe('expired');
    expect(await committedBytes(admin, tenant.tenantId)).toBe(kept.length);
    await expect(h.s3.statObject(where.bucket, objectKey(where, 'docs', abandonedName))).rejects.toMatchObject({ code: 'NotFound' });
    expect((await h.s3.statObject(where.bucket, objectKey(where, 'docs', keptName))).size).toBe(kept.length);
    // The name is free again.
    expect((await member.startUpload({ bucket: 'docs', name: abandonedName, size: 1, contentType: 'text/plain', sha256: sha256Hex('x') })).status).toBe(201);
  });
});
