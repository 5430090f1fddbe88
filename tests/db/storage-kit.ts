/**
 * Shared by the tests/db/storage-*.test.ts suites: tenants of their own with a storage
 * limit, and uploads and files written as the writer under test.
 */
import type pg from 'pg';
import { createUsers, uniqueSlug, type PlanId } from '../fixtures/seed.js';

/** Any well-formed digest: the database checks the shape, the storage service the bytes. */
export const SHA = 'c'.repeat(64);

export interface StorageTenant {
  tenantId: string;
  slug: string;
  ownerId: string;
  memberId: string;
}

/** A tenant (owner and member) on `plan`, with `maxStorageBytes` as its override when given. */
export async function storageTenant(
  admin: pg.Pool,
  label: string,
  { plan = 'pro', maxStorageBytes }: { plan?: PlanId; maxStorageBytes?: number } = {},
): Promise<StorageTenant> {
  const slug = uniqueSlug(label);
  const [ownerId, memberId] = (await createUsers(admin, label, 2)) as [string, string];
  const { rows } = await admin.query<{ id: string }>(
    'INSERT INTO tenants (slug, name, plan_id, owner_user_id, max_storage_bytes) VALUES ($1, $1, $2, $3, $4) RETURNING id',
    [slug, plan, ownerId, maxStorageBytes ?? null],
  );
  const tenantId = rows[0]!.id;
  await admin.query(
    `INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'owner'), ($1, $3, 'member')`,
    [tenantId, ownerId, memberId],
  );
  return { tenantId, slug, ownerId, memberId };
}

export interface UploadFields {
  tenantId: string;
  name?: string;
  bucket?: string;
  size: number;
  status?: 'pending' | 'completed' | 'expired' | 'refused';
  expiresAt?: Date;
}

/** Inserts an upload through `db` (a tenant-context client, or platform_admin); returns its id. */
export async function insertUpload(db: Pick<pg.ClientBase, 'query'>, fields: UploadFields): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO file_uploads (tenant_id, bucket, name, size, content_type, sha256, expires_at, status)
     VALUES ($1, $2, $3, $4, 'application/octet-stream', $5, $6, $7) RETURNING id`,
    [
      fields.tenantId,
      fields.bucket ?? 'uploads',
      fields.name ?? `u-${uniqueSlug('f')}.bin`,
      fields.size,
      SHA,
      fields.expiresAt ?? new Date(Date.now() + 15 * 60_000),
      fields.status ?? 'pending',
    ],
  );
  return rows[0]!.id;
}

/** Inserts a file row through `db`; returns its id. */
export async function insertFile(
  db: Pick<pg.ClientBase, 'query'>,
  fields: { tenantId: string; name?: string; bucket?: string; size: number },
): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO files (tenant_id, bucket, name, size, content_type, sha256) VALUES ($1, $2, $3, $4, 'application/octet-stream', $5) RETURNING id`,
    [fields.tenantId, fields.bucket ?? 'uploads', fields.name ?? `f-${uniqueSlug('f')}.bin`, fields.size, SHA],
  );
  return rows[0]!.id;
}

/** What the limit checks count, as platform_admin: files plus pending uploads. */
export async function committedBytes(admin: pg.Pool, tenantId: string): Promise<number> {
  const { rows } = await admin.query<{ bytes: string }>('SELECT app.storage_bytes_committed($1)::text AS bytes', [tenantId]);
  return Number(rows[0]!.bytes);
}
