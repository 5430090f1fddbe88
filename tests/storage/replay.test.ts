/**
 * Presigned POST policies replayed: S3 takes a policy until it expires, whatever became of
 * its upload, so a replay after the file was deleted or the upload refused stores bytes no
 * row counts. The sweeper settles every upload once its policy is past, from the database's
 * state alone: such an object goes, unless a file or a new upload holds the name by then.
 * On a database of its own: the sweeper takes every tenant's due uploads.
 */
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hasuraSessionJson } from '../../services/shared/src/db/tenant-context.js';
import { objectKey, tenantStorageLocation, type StorageLayout, type TenantStorageLocation } from '../../services/shared/src/storage/location.js';
import { startUploadSweeper, type UploadSweeper } from '../../services/storage/src/sweeper.js';
import { hex } from '../fixtures/seed.js';
import { createScratchDatabase, type ScratchDatabase } from '../helpers/database.js';
import {
  committedBytes,
  createStorageTenant,
  fileName,
  postForm,
  sha256Hex,
  startStorageHarness,
  StorageClient,
  type Body,
  type RunningService,
  type StorageHarness,
  type StorageTenant,
} from './harness.js';

/** Long enough to upload, complete, delete and replay; short enough to wait out. */
const SHORT_TTL_SECONDS = 5;

let scratch: ScratchDatabase;
beforeAll(async () => {
  scratch = await createScratchDatabase({ migrated: true });
});
afterAll(() => scratch?.drop());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(['bucket', 'prefix'] as const)('replayed POST policies, %s layout', (layout: StorageLayout) => {
  let h: StorageHarness;
  let pool: pg.Pool;
  let admin: pg.Pool;
  let tenant: StorageTenant;
  let where: TenantStorageLocation;
  beforeAll(async () => {
    h = await startStorageHarness(layout);
    pool = new pg.Pool({ connectionString: scratch.url('app_service'), max: 4 });
    admin = new pg.Pool({ connectionString: scratch.url('platform_admin'), max: 2 });
    tenant = await createStorageTenant(admin, 'replay');
    where = tenantStorageLocation(tenant.tenantId, { layout, sharedBucket: h.sharedBucket });
  });
  afterAll(async () => {
    await h?.close();
    await Promise.all([pool?.end(), admin?.end()]);
  });

  const memberOf = (service: RunningService) => new StorageClient(service.url, h.token(tenant.users.member, tenant.tenantId, 'member'));
  const sweeperOf = (service: RunningService): UploadSweeper =>
    startUploadSweeper({ pool, objects: service.deps.objects, logger: pino({ level: 'silent' }), intervalMs: 3_600_000, graceSeconds: 0 });
  const key = (name: string) => objectKey(where, 'docs', name);
  /** The object's size, or null when S3 has none at the key. */
  const storedSize = async (name: string): Promise<number | null> => {
    try {
      return (await h.s3.statObject(where.bucket, key(name))).size;
    } catch (error) {
      if ((error as { code?: string }).code === 'NotFound') return null;
      throw error;
    }
  };
  const readObject = async (name: string): Promise<string> => {
    const chunks: Buffer[] = [];
    for await (const chunk of await h.s3.getObject(where.bucket, key(name))) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString();
  };
  const uploadRow = async (id: string) =>
    (await admin.query<{ status: string; settled: boolean; file_id: string | null }>('SELECT status, settled_at IS NOT NULL AS settled, file_id FROM file_uploads WHERE id = $1', [id]))
      .rows[0];
  /** Waits until the policy of `started` is past (the sweeper's grace is 0 here). */
  const policyPast = async (started: Body) => sleep(Math.max(0, new Date(started.body.upload.expiresAt).getTime() - Date.now()) + 1_200);

  async function startAndPost(member: StorageClient, content: Buffer, name = fileName('replay')) {
    const started = await member.startUpload({ bucket: 'docs', name, size: content.length, contentType: 'text/plain', sha256: sha256Hex(content) });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    expect((await postForm(started.body.url, started.body.fields, content)).status).toBe(204);
    return { started, name, content, id: started.body.upload.id as string };
  }

  async function uploadAndComplete(member: StorageClient, content: Buffer, name?: string) {
    const upload = await startAndPost(member, content, name);
    const completed = await member.complete(upload.id);
    expect(completed.status, JSON.stringify(completed.body)).toBe(200);
    return { ...upload, fileId: completed.body.file.id as string };
  }

  test('a POST replayed after its file was deleted stores the object until the sweep removes it; a restart in between changes nothing', { retry: 2 }, async () => {
    const first = await h.startService({ pool, uploadTtlSeconds: SHORT_TTL_SECONDS });
    const firstSweeper = sweeperOf(first);
    const member = memberOf(first);
    const gone = await uploadAndComplete(member, Buffer.from(`replayed ${hex(8)}`));
    const live = await uploadAndComplete(member, Buffer.from(`live ${hex(8)}`));
    expect((await member.call('DELETE', `/storage/files/${gone.fileId}`)).status).toBe(204);
    expect(await storedSize(gone.name)).toBeNull();
    const before = await committedBytes(admin, tenant.tenantId);

    // The same form again: S3 takes it (a presigned POST cannot be revoked), and no row counts it.
    expect((await postForm(gone.started.body.url, gone.started.body.fields, gone.content)).status).toBe(204);
    expect(await storedSize(gone.name)).toBe(gone.content.length);
    expect(await committedBytes(admin, tenant.tenantId)).toBe(before);
    // Not due while its policy holds: a sweep now would be followed by another replay.
    await firstSweeper.sweep();
    expect(await uploadRow(gone.id)).toEqual({ status: 'completed', settled: false, file_id: null });

    // The service and its sweeper restart: what is due is the database's, not the process's.
    await firstSweeper.stop();
    await first.close();
    await policyPast(gone.started);
    const second = await h.startService({ pool });
    const sweeper = sweeperOf(second);
    const settled = await sweeper.sweep().finally(() => sweeper.stop());
    expect(await storedSize(gone.name)).toBeNull();
    expect(settled).toBeGreaterThanOrEqual(2);
    expect(await uploadRow(gone.id)).toEqual({ status: 'completed', settled: true, file_id: null });
    // A live file's object stays, and its upload is settled with nothing to do.
    expect(await storedSize(live.name)).toBe(live.content.length);
    expect(await uploadRow(live.id)).toEqual({ status: 'completed', settled: true, file_id: live.fileId });
    expect((await memberOf(second).call('GET', `/storage/files/${live.fileId}/meta`)).status).toBe(200);
    expect(await committedBytes(admin, tenant.tenantId)).toBe(before);
    // The policy is past: a replay now is refused by S3, and there is nothing left to sweep.
    expect((await postForm(gone.started.body.url, gone.started.body.fields, gone.content)).status).toBe(403);
    expect(await storedSize(gone.name)).toBeNull();
  });

  test('a re-upload of the same name keeps its object: completed before the sweep, or still pending and completed after it', { retry: 2 }, async () => {
    const service = await h.startService({ pool, uploadTtlSeconds: SHORT_TTL_SECONDS });
    const longLived = await h.startService({ pool });
    const member = memberOf(service);
    const again = memberOf(longLived);

    // Deleted, replayed, then uploaded again under the same name and completed.
    const old = await uploadAndComplete(member, Buffer.from(`old ${hex(8)}`));
    expect((await member.call('DELETE', `/storage/files/${old.fileId}`)).status).toBe(204);
    expect((await postForm(old.started.body.url, old.started.body.fields, old.content)).status).toBe(204);
    const renewed = await uploadAndComplete(again, Buffer.from(`renewed, longer ${hex(8)}`), old.name);

    // Deleted, replayed, then uploaded again under the same name, posted but not yet completed at the sweep.
    const older = await uploadAndComplete(member, Buffer.from(`older ${hex(8)}`));
    expect((await member.call('DELETE', `/storage/files/${older.fileId}`)).status).toBe(204);
    expect((await postForm(older.started.body.url, older.started.body.fields, older.content)).status).toBe(204);
    const pending = await startAndPost(again, Buffer.from(`pending, longer ${hex(8)}`), older.name);

    await policyPast(older.started);
    const sweeper = sweeperOf(service);
    try {
      await sweeper.sweep();
    } finally {
      await sweeper.stop();
    }
    expect(await uploadRow(old.id)).toMatchObject({ settled: true });
    expect(await uploadRow(older.id)).toMatchObject({ settled: true });
    expect(await readObject(renewed.name)).toBe(renewed.content.toString());
    expect(await readObject(pending.name)).toBe(pending.content.toString());
    const completed = await again.complete(pending.id);
    expect(completed.status, JSON.stringify(completed.body)).toBe(200);
    const download = (await again.call('GET', `/storage/files/${renewed.fileId}`)).response.headers.get('location')!;
    expect(await (await fetch(download)).text()).toBe(renewed.content.toString());
  });

  test('starting an upload of a name waits while the sweeper holds the name (so no new object lands between its look and its delete)', async () => {
    const name = fileName('held');
    const sweeping = await pool.connect();
    const starting = await pool.connect();
    const hasuraUser = hasuraSessionJson({ tenantId: tenant.tenantId, userId: tenant.users.member, role: 'member' });
    try {
      await sweeping.query('BEGIN');
      await sweeping.query('SELECT app.lock_file_name($1, $2, $3)', [tenant.tenantId, 'docs', name]);
      await starting.query('BEGIN');
      await starting.query("SELECT set_config('hasura.user', $1, true), set_config('lock_timeout', '300ms', true)", [hasuraUser]);
      const insert = (target: string) =>
        starting.query(
          `INSERT INTO file_uploads (tenant_id, bucket, name, size, content_type, sha256, expires_at)
           VALUES ($1, 'docs', $2, 1, 'text/plain', $3, now() + interval '1 minute')`,
          [tenant.tenantId, target, sha256Hex('x')],
        );
      await expect(insert(name)).rejects.toMatchObject({ code: '55P03' });
      await starting.query('ROLLBACK');
      // Another name does not wait.
      await starting.query('BEGIN');
      await starting.query("SELECT set_config('hasura.user', $1, true), set_config('lock_timeout', '300ms', true)", [hasuraUser]);
      await insert(`${name}.other`);
      await starting.query('ROLLBACK');
      await sweeping.query('ROLLBACK');
    } finally {
      sweeping.release();
      starting.release();
    }
  });

  test('a refused upload replayed: its object stays until the sweep removes it', { retry: 2 }, async () => {
    const service = await h.startService({ pool, uploadTtlSeconds: SHORT_TTL_SECONDS });
    const member = memberOf(service);
    const content = Buffer.from(`declared ${hex(8)}`);
    const name = fileName('refused');
    const started = await member.startUpload({ bucket: 'docs', name, size: content.length, contentType: 'text/plain', sha256: sha256Hex(content) });
    expect(started.status).toBe(201);
    // Other bytes at the key (as another writer of the bucket could put): completing refuses them.
    await h.s3.putObject(where.bucket, key(name), Buffer.from('x'.repeat(content.length)));
    const refused = await member.complete(started.body.upload.id);
    expect({ status: refused.status, code: refused.body?.error?.code }).toEqual({ status: 422, code: 'upload_mismatch' });
    expect(await storedSize(name)).toBeNull();
    const before = await committedBytes(admin, tenant.tenantId);

    // The policy still holds: the declared bytes go in, uncounted.
    expect((await postForm(started.body.url, started.body.fields, content)).status).toBe(204);
    expect(await storedSize(name)).toBe(content.length);
    expect(await uploadRow(started.body.upload.id)).toEqual({ status: 'refused', settled: false, file_id: null });
    expect(await committedBytes(admin, tenant.tenantId)).toBe(before);

    await policyPast(started);
    const sweeper = sweeperOf(service);
    try {
      await sweeper.sweep();
    } finally {
      await sweeper.stop();
    }
    expect(await storedSize(name)).toBeNull();
    expect(await uploadRow(started.body.upload.id)).toEqual({ status: 'refused', settled: true, file_id: null });
    // The name is free for a new upload.
    expect((await member.startUpload({ bucket: 'docs', name, size: 1, contentType: 'text/plain', sha256: sha256Hex('x') })).status).toBe(201);
  });
});
