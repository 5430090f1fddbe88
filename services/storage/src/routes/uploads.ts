import type { PoolClient } from 'pg';
import { z } from 'zod';
import { fail } from '../../../shared/src/errors/catalog.js';
import { databaseRefusal } from '../../../shared/src/errors/database.js';
import { HttpError } from '../../../shared/src/http/errors.js';
import { inCallerTenant, storageCaller, type StorageCaller } from '../access.js';
import type { StorageDependencies } from '../deps.js';
import { defineOperation } from '../http.js';
import { MAX_OBJECT_KEY_BYTES, MAX_POST_BYTES } from '../object-store.js';
import { FILE_COLUMNS, fileJson, fileSchema, UPLOAD_COLUMNS, uploadJson, uploadSchema, type FileRow, type UploadRow } from '../records.js';
import { onS3 } from '../s3-errors.js';
import { contentTypeSchema, fileNameSchema, idParams, logicalBucketSchema, sha256HexSchema, sizeSchema } from '../schemas.js';

const uploadRequest = z.object({
  bucket: logicalBucketSchema,
  name: fileNameSchema,
  size: sizeSchema,
  contentType: contentTypeSchema,
  sha256: sha256HexSchema,
});

const presignedUpload = z.object({
  upload: uploadSchema,
  url: z.string().describe('POST a multipart/form-data form here'),
  fields: z.record(z.string(), z.string()).describe('every field, in any order, before the `file` field (which must come last)'),
});

/** Rethrows a refusal of the database's rules (limits, names taken) as its catalog error. */
function refused(error: unknown): never {
  throw databaseRefusal(error) ?? error;
}

export const createUpload = defineOperation({
  method: 'post',
  path: '/storage/uploads',
  summary:
    "Starts an upload (files:write): reserves its size against the tenant's storage limit at once, and answers a presigned POST whose policy fixes the key, the Content-Type, the exact size and the SHA-256. POST the fields and then the file (as the last field) to url, then complete the upload.",
  tag: 'uploads',
  auth: 'token',
  body: uploadRequest,
  responses: {
    201: { description: 'the upload, and the presigned POST (url, fields)', schema: presignedUpload },
    403: { description: 'missing files:write, or another tenant' },
    409: { description: 'file_exists, upload_in_progress (same name), storage_limit_exceeded' },
    413: { description: "file_too_large: above the plan's single-file limit" },
    422: { description: 'validation_failed: a bad name (traversal, control characters), bucket, type, size or SHA-256' },
  },
  async handler(context) {
    const caller = await storageCaller(context, 'files:write');
    const { deps, body, log } = context;
    const location = deps.objects.location(caller.tenantId);
    const key = deps.objects.key(location, body.bucket, body.name);
    if (Buffer.byteLength(key, 'utf8') > MAX_OBJECT_KEY_BYTES) {
      throw fail('validation_failed', `name: too long: with its bucket and the tenant's prefix the S3 key would exceed ${MAX_OBJECT_KEY_BYTES} bytes`);
    }
    // Whatever the plan allows: S3 itself takes no more in one POST.
    if (body.size > MAX_POST_BYTES) throw fail('file_too_large', `S3 takes at most ${MAX_POST_BYTES} bytes in one upload`);
    await onS3(log, 'ensure bucket', () => deps.objects.ensureBucket(location));
    const { upload, post } = await inCallerTenant(deps, caller, async (client) => {
      const { rows } = await client
        .query<UploadRow>({
          name: 'storage-upload-insert',
          // The limits are the database's (a trigger, serialised per tenant): concurrent uploads cannot add up past them.
          text: `INSERT INTO file_uploads (tenant_id, bucket, name, size, content_type, sha256, created_by, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
                 RETURNING ${UPLOAD_COLUMNS}`,
          values: [caller.tenantId, body.bucket, body.name, body.size, body.contentType, body.sha256, caller.userId, deps.uploadTtlSeconds],
        })
        .catch(refused);
      // After the insert, not before: a completion of the same name under way holds the
      // pending index until it commits, and this statement then sees its file.
      const taken = await client.query({ name: 'storage-file-taken', text: 'SELECT 1 FROM files WHERE bucket = $1 AND name = $2', values: [body.bucket, body.name] });
      if (taken.rowCount) throw fail('file_exists');
      const row = rows[0]!;
      // Signing needs no network (the region is set): a failure rolls the reservation back.
      const signed = await onS3(log, 'presign upload', () =>
        deps.objects.presignUpload({ bucket: location.bucket, key, contentType: body.contentType, size: body.size, sha256Hex: body.sha256, expiresAt: row.expires_at }),
      );
      return { upload: row, post: signed };
    }).catch(async (error: unknown) => {
      if (error instanceof HttpError && error.code === 'upload_in_progress') throw await inProgress(deps, caller, body);
      throw error;
    });
    log.info({ tenantId: caller.tenantId, uploadId: upload.id, size: body.size }, 'upload started');
    return { status: 201, body: { upload: uploadJson(upload), url: post.url, fields: post.fields } satisfies z.infer<typeof presignedUpload> };
  },
});

/** The refusal for a name another upload holds, saying until when (the sweeper frees an expired one within a minute or two). */
async function inProgress(deps: StorageDependencies, caller: StorageCaller, name: { bucket: string; name: string }): Promise<HttpError> {
  const { rows } = await inCallerTenant(deps, caller, (client) =>
    client.query<{ expires_at: Date; expired: boolean }>({
      name: 'storage-upload-holding',
      text: "SELECT expires_at, expires_at <= now() AS expired FROM file_uploads WHERE bucket = $1 AND name = $2 AND status = 'pending'",
      values: [name.bucket, name.name],
    }),
  );
  const holding = rows[0];
  if (!holding) return fail('upload_in_progress');
  if (holding.expired) return fail('upload_in_progress', 'an upload of this name expired and is being cleaned up: retry in a minute or two');
  return fail('upload_in_progress', `an upload of this name is in progress until ${holding.expires_at.toISOString()}: complete it, or wait until then`);
}

interface UploadState extends UploadRow {
  expired: boolean;
}

/** Refuses an upload that cannot be completed any more, with the reason. */
function assertCompletable(upload: UploadState): void {
  if (upload.status === 'completed') throw fail('upload_already_completed');
  if (upload.status === 'refused') throw fail('upload_refused');
  if (upload.status === 'expired' || upload.expired) throw fail('upload_expired');
}

async function readUpload(client: PoolClient, id: string, { lock }: { lock: boolean }): Promise<UploadState | undefined> {
  const { rows } = await client.query<UploadState>({
    name: lock ? 'storage-upload-lock' : 'storage-upload-read',
    text: `SELECT ${UPLOAD_COLUMNS}, expires_at <= now() AS expired FROM file_uploads WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
    values: [id],
  });
  return rows[0];
}

export const completeUpload = defineOperation({
  method: 'post',
  path: '/storage/uploads/:id/complete',
  summary:
    'Completes an upload (files:write): the S3 server must hold the object with the declared size and SHA-256; then the file is recorded. An object that differs is deleted and the upload refused.',
  tag: 'uploads',
  auth: 'token',
  params: idParams,
  responses: {
    200: { description: 'the file', schema: z.object({ file: fileSchema }) },
    404: { description: "upload_not_found (also for another tenant's upload)" },
    409: { description: 'upload_not_found_in_storage (POST it, then retry), upload_already_completed, upload_refused' },
    410: { description: 'upload_expired' },
    422: { description: 'upload_mismatch: the object differs in size or SHA-256; it was removed' },
  },
  async handler(context) {
    const caller = await storageCaller(context, 'files:write');
    const { deps, params, log } = context;
    const upload = await inCallerTenant(deps, caller, (client) => readUpload(client, params.id, { lock: false }));
    if (!upload) throw fail('upload_not_found');
    assertCompletable(upload);

    const location = deps.objects.location(caller.tenantId);
    const key = deps.objects.key(location, upload.bucket, upload.name);
    let stored = await onS3(log, 'stat upload', () => deps.objects.stat(location.bucket, key));
    if (stored && stored.size === Number(upload.size) && stored.sha256Base64 === null) {
      // An S3 server that keeps or reports no checksum: the bytes themselves, read once.
      stored = await onS3(log, 'hash upload', () => deps.objects.digest(location.bucket, key));
    }
    if (!stored) throw fail('upload_not_found_in_storage');
    const declaredChecksum = Buffer.from(upload.sha256, 'hex').toString('base64');
    const problem =
      stored.size !== Number(upload.size)
        ? `the object holds ${stored.size} bytes, ${upload.size} were declared`
        : stored.sha256Base64 !== declaredChecksum
          ? "the object's SHA-256 differs from the declared one"
          : null;
    if (problem) {
      // Locked while the object goes: no other completion or sweep acts on it meanwhile.
      const refusedNow = await inCallerTenant(deps, caller, async (client) => {
        const current = await readUpload(client, upload.id, { lock: true });
        if (current?.status !== 'pending') return false;
        await onS3(log, 'remove mismatched upload', () => deps.objects.remove(location.bucket, key));
        await client.query({ name: 'storage-upload-refuse', text: "UPDATE file_uploads SET status = 'refused' WHERE id = $1", values: [upload.id] });
        return true;
      });
      if (!refusedNow) {
        const current = await inCallerTenant(deps, caller, (client) => readUpload(client, upload.id, { lock: false }));
        if (current) assertCompletable(current);
      }
      log.warn({ tenantId: caller.tenantId, uploadId: upload.id, problem }, 'upload refused');
      throw fail('upload_mismatch', `${problem}: the object was removed and the upload refused; start a new upload`);
    }

    const file = await inCallerTenant(deps, caller, async (client) => {
      // Completed before the file goes in, in one transaction: the bytes move from the upload
      // to the file and are never counted twice. expires_at is checked by the database's clock,
      // the sweeper's: an upload the sweeper may take is never completed.
      const completed = await client.query({
        name: 'storage-upload-complete',
        text: "UPDATE file_uploads SET status = 'completed' WHERE id = $1 AND status = 'pending' AND expires_at > now()",
        values: [upload.id],
      });
      if (!completed.rowCount) {
        const current = await readUpload(client, upload.id, { lock: false });
        if (current) assertCompletable(current);
        throw fail('upload_not_found');
      }
      const { rows } = await client
        .query<FileRow>({
          name: 'storage-file-insert',
          text: `INSERT INTO files (tenant_id, bucket, name, size, content_type, sha256, uploaded_by)
                 SELECT tenant_id, bucket, name, size, content_type, sha256, coalesce(created_by, $2) FROM file_uploads WHERE id = $1
                 RETURNING ${FILE_COLUMNS}`,
          values: [upload.id, caller.userId],
        })
        .catch(refused);
      const row = rows[0]!;
      await client.query({ name: 'storage-upload-file', text: 'UPDATE file_uploads SET file_id = $2 WHERE id = $1', values: [upload.id, row.id] });
      return row;
    });
    log.info({ tenantId: caller.tenantId, uploadId: upload.id, fileId: file.id }, 'upload completed');
    return { body: { file: fileJson(file) } };
  },
});
