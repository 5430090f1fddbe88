/**
 * The storage limits (migration 1795900700000_storage), enforced by the database for every
 * writer: the tenant's storage limit over files plus pending uploads, race-free under
 * concurrent reservations, and the plan's single-file limit.
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, describe, expect, test } from 'vitest';
import { withTenant } from '../../services/shared/src/db/tenant-context.js';
import { dbError, type DbError } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';
import { committedBytes, insertFile, insertUpload, storageTenant, type StorageTenant } from './storage-kit.js';

const PARALLEL = 20;
const CHECK_VIOLATION = '23514';

const admin = poolAs('platform_admin');
const service = poolAs('app_service', PARALLEL + 2);
afterAll(async () => {
  await Promise.all([admin.end(), service.end()]);
});

const asOwner = <T>(tenant: StorageTenant, work: (client: pg.PoolClient) => Promise<T>) =>
  withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerId, role: 'owner' }, work);

const refusal = (error: DbError | undefined) => error && { code: error.code, constraint: error.constraint };

interface RaceOutcome {
  accepted: number[];
  refused: Array<{ size: number; error: DbError }>;
  backends: number;
}

/**
 * One reservation per connection, each in its own tenant-context transaction; all of them
 * open before any inserts, and each holds its transaction a moment after the insert so the
 * others queue behind it rather than finishing one after another by chance.
 */
async function raceReservations(tenant: StorageTenant, sizes: number[]): Promise<RaceOutcome> {
  let arrived = 0;
  let release!: () => void;
  const barrier = new Promise<void>((resolve) => (release = resolve));
  const backends = new Set<number>();
  const results = await Promise.allSettled(
    sizes.map((size) =>
      asOwner(tenant, async (client) => {
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        backends.add(rows[0]!.pid);
        if (++arrived === sizes.length) release();
        await barrier;
        await insertUpload(client, { tenantId: tenant.tenantId, size });
        await client.query('SELECT pg_sleep(0.005)');
      }),
    ),
  );
  const outcome: RaceOutcome = { accepted: [], refused: [], backends: backends.size };
  results.forEach((result, index) => {
    if (result.status === 'fulfilled') outcome.accepted.push(sizes[index]!);
    else outcome.refused.push({ size: sizes[index]!, error: result.reason as DbError });
  });
  return outcome;
}

const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

describe('concurrent reservations', () => {
  test(`${PARALLEL} uploads of one size on ${PARALLEL} connections against room for 7½: exactly 7 get in`, async () => {
    const size = 1_000;
    const limit = 7_500;
    const tenant = await storageTenant(admin, 'st-race', { maxStorageBytes: limit });
    const outcome = await raceReservations(tenant, Array.from({ length: PARALLEL }, () => size));
    expect(outcome.backends, 'each reservation must run on its own connection').toBe(PARALLEL);
    expect(outcome.accepted).toHaveLength(7);
    expect(outcome.refused).toHaveLength(PARALLEL - 7);
    for (const { error } of outcome.refused) {
      expect(refusal(error), error.message).toEqual({ code: CHECK_VIOLATION, constraint: 'file_uploads_storage_limit' });
      expect(error.message).toContain(`${limit} bytes`);
    }
    expect(await committedBytes(admin, tenant.tenantId)).toBe(7 * size);
  });

  test('any sizes: the accepted ones fit, and none refused would have fitted in what is left', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 5_000 }), { minLength: PARALLEL, maxLength: PARALLEL }),
        fc.integer({ min: 1_000, max: 60_000 }),
        async (sizes, limit) => {
          const tenant = await storageTenant(admin, 'st-prop', { maxStorageBytes: limit });
          const outcome = await raceReservations(tenant, sizes);
          const stored = sum(outcome.accepted);
          expect(stored).toBeLessThanOrEqual(limit);
          expect(await committedBytes(admin, tenant.tenantId)).toBe(stored);
          for (const { size, error } of outcome.refused) {
            expect(refusal(error), error.message).toEqual({ code: CHECK_VIOLATION, constraint: 'file_uploads_storage_limit' });
            // Refused when it did not fit in the room left at its turn, which only shrank.
            expect(size).toBeGreaterThan(limit - stored);
          }
        },
      ),
      { numRuns: 6 },
    );
  });
});

describe('the single-file limit', () => {
  test("an upload above the plan's max_file_bytes is refused with the limit in the message; at it, accepted", async () => {
    const tenant = await storageTenant(admin, 'st-single', { plan: 'free' });
    const { rows } = await admin.query<{ max_file_bytes: string }>("SELECT max_file_bytes::text FROM plans WHERE id = 'free'");
    const fileLimit = Number(rows[0]!.max_file_bytes);
    const over = await dbError(asOwner(tenant, (client) => insertUpload(client, { tenantId: tenant.tenantId, size: fileLimit + 1 })));
    expect(refusal(over), over?.message).toEqual({ code: CHECK_VIOLATION, constraint: 'file_uploads_file_size_limit' });
    expect(over!.message).toContain(`${fileLimit} bytes`);
    await asOwner(tenant, (client) => insertUpload(client, { tenantId: tenant.tenantId, size: fileLimit }));
    expect(await committedBytes(admin, tenant.tenantId)).toBe(fileLimit);
  });

  test('a plan without a single-file limit takes a file as large as the storage limit allows', async () => {
    const tenant = await storageTenant(admin, 'st-nofile', { plan: 'enterprise', maxStorageBytes: 10 * 1024 ** 3 });
    await asOwner(tenant, (client) => insertUpload(client, { tenantId: tenant.tenantId, size: 5 * 1024 ** 3 }));
    const over = await dbError(asOwner(tenant, (client) => insertUpload(client, { tenantId: tenant.tenantId, size: 5 * 1024 ** 3 + 1 })));
    expect(refusal(over)).toEqual({ code: CHECK_VIOLATION, constraint: 'file_uploads_storage_limit' });
  });

  test('re-opening an upload refused for its size is refused again', async () => {
    const tenant = await storageTenant(admin, 'st-reopen-size', { plan: 'free' });
    const id = await insertUpload(admin, { tenantId: tenant.tenantId, size: 30 * 1024 ** 2, status: 'refused' });
    const reopened = await dbError(asOwner(tenant, (client) => client.query("UPDATE file_uploads SET status = 'pending' WHERE id = $1", [id])));
    expect(refusal(reopened)).toEqual({ code: CHECK_VIOLATION, constraint: 'file_uploads_file_size_limit' });
  });
});

describe('what counts', () => {
  test('pending uploads count against a file insert; a completed upload counts once, as its file', async () => {
    const tenant = await storageTenant(admin, 'st-complete', { maxStorageBytes: 1_000 });
    const uploadId = await asOwner(tenant, (client) => insertUpload(client, { tenantId: tenant.tenantId, name: 'a.bin', size: 600 }));

    // Another writer's file that would fit only without the reservation.
    const squeezed = await dbError(asOwner(tenant, (client) => insertFile(client, { tenantId: tenant.tenantId, name: 'b.bin', size: 500 })));
    expect(refusal(squeezed), squeezed?.message).toEqual({ code: CHECK_VIOLATION, constraint: 'files_storage_limit' });
    expect(squeezed!.message).toContain('1000 bytes');

    // The storage service: the upload completed first, then its file, in one transaction.
    await asOwner(tenant, async (client) => {
      await client.query("UPDATE file_uploads SET status = 'completed' WHERE id = $1", [uploadId]);
      const fileId = await insertFile(client, { tenantId: tenant.tenantId, name: 'a.bin', size: 600 });
      await client.query('UPDATE file_uploads SET file_id = $2 WHERE id = $1', [uploadId, fileId]);
    });
    expect(await committedBytes(admin, tenant.tenantId)).toBe(600);
    const upload = await admin.query<{ completed_at: Date | null }>('SELECT completed_at FROM file_uploads WHERE id = $1', [uploadId]);
    expect(upload.rows[0]!.completed_at).toBeInstanceOf(Date);

    const tooMuch = await dbError(asOwner(tenant, (client) => insertUpload(client, { tenantId: tenant.tenantId, size: 401 })));
    expect(refusal(tooMuch)).toEqual({ code: CHECK_VIOLATION, constraint: 'file_uploads_storage_limit' });
    await asOwner(tenant, (client) => insertUpload(client, { tenantId: tenant.tenantId, size: 400 }));
    expect(await committedBytes(admin, tenant.tenantId)).toBe(1_000);
  });

  test('expired and refused uploads count for nothing; re-opening one when the room is gone is refused', async () => {
    const tenant = await storageTenant(admin, 'st-expired', { maxStorageBytes: 1_000 });
    const [expiring, refusing] = await asOwner(tenant, async (client) => [
      await insertUpload(client, { tenantId: tenant.tenantId, size: 500 }),
      await insertUpload(client, { tenantId: tenant.tenantId, size: 500 }),
    ]);
    expect(await committedBytes(admin, tenant.tenantId)).toBe(1_000);
    await asOwner(tenant, async (client) => {
      await client.query("UPDATE file_uploads SET status = 'expired' WHERE id = $1", [expiring]);
      await client.query("UPDATE file_uploads SET status = 'refused' WHERE id = $1", [refusing]);
    });
    expect(await committedBytes(admin, tenant.tenantId)).toBe(0);
    // Rows inserted already expired or refused take no room either.
    await insertUpload(admin, { tenantId: tenant.tenantId, size: 5_000, status: 'expired' });
    await asOwner(tenant, (client) => insertUpload(client, { tenantId: tenant.tenantId, size: 700 }));
    const reopened = await dbError(
      asOwner(tenant, (client) => client.query("UPDATE file_uploads SET status = 'pending' WHERE id = $1", [expiring])),
    );
    expect(refusal(reopened)).toEqual({ code: CHECK_VIOLATION, constraint: 'file_uploads_storage_limit' });
    expect(await committedBytes(admin, tenant.tenantId)).toBe(700);
  });

  test('deleting a file frees its bytes', async () => {
    const tenant = await storageTenant(admin, 'st-delete', { maxStorageBytes: 1_000 });
    const fileId = await asOwner(tenant, (client) => insertFile(client, { tenantId: tenant.tenantId, size: 900 }));
    expect(refusal(await dbError(asOwner(tenant, (client) => insertUpload(client, { tenantId: tenant.tenantId, size: 200 }))))).toEqual({
      code: CHECK_VIOLATION,
      constraint: 'file_uploads_storage_limit',
    });
    await asOwner(tenant, (client) => client.query('DELETE FROM files WHERE id = $1', [fileId]));
    await asOwner(tenant, (client) => insertUpload(client, { tenantId: tenant.tenantId, size: 200 }));
    expect(await committedBytes(admin, tenant.tenantId)).toBe(200);
  });

  test('growing a file past the limit is refused', async () => {
    const tenant = await storageTenant(admin, 'st-grow', { maxStorageBytes: 1_000 });
    const fileId = await insertFile(admin, { tenantId: tenant.tenantId, size: 900 });
    const grown = await dbError(admin.query('UPDATE files SET size = 1001 WHERE id = $1', [fileId]));
    expect(refusal(grown)).toEqual({ code: CHECK_VIOLATION, constraint: 'files_storage_limit' });
    await admin.query('UPDATE files SET size = 1000 WHERE id = $1', [fileId]);
  });
});

describe('every writer', () => {
  test('platform_admin (an import) inserting many files in one statement: all or nothing, checked once for the lot', async () => {
    const tenant = await storageTenant(admin, 'st-bulk', { maxStorageBytes: 10_000 });
    const bulk = (count: number, size: number, prefix: string) =>
      admin.query(
        `INSERT INTO files (tenant_id, bucket, name, size, content_type, sha256)
         SELECT $1, 'imported', $4 || n || '.bin', $3, 'application/octet-stream', repeat('d', 64) FROM generate_series(1, $2::int) AS n`,
        [tenant.tenantId, count, size, prefix],
      );
    const over = await dbError(bulk(101, 100, 'over-'));
    expect(refusal(over)).toEqual({ code: CHECK_VIOLATION, constraint: 'files_storage_limit' });
    expect(await committedBytes(admin, tenant.tenantId)).toBe(0);
    await bulk(100, 100, 'fits-');
    expect(await committedBytes(admin, tenant.tenantId)).toBe(10_000);
  });

  test('a tenant without any storage limit (override and plan NULL) takes what it is given', async () => {
    const tenant = await storageTenant(admin, 'st-unlimited', { plan: 'enterprise' });
    const { rows } = await admin.query<{ max_storage_bytes: string | null; max_file_bytes: string | null }>(
      'SELECT max_storage_bytes, max_file_bytes FROM app.tenant_limits($1)',
      [tenant.tenantId],
    );
    expect(rows[0]).toEqual({ max_storage_bytes: null, max_file_bytes: null });
    await asOwner(tenant, (client) => insertUpload(client, { tenantId: tenant.tenantId, size: 2 ** 50 }));
    expect(await committedBytes(admin, tenant.tenantId)).toBe(2 ** 50);
  });
});
