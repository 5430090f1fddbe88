import type { PoolClient } from 'pg';
import { z } from 'zod';
import { fail } from '../../../shared/src/errors/catalog.js';
import { inCallerTenant, storageCaller } from '../access.js';
import { defineOperation } from '../http.js';
import { FILE_COLUMNS, fileJson, fileSchema, type FileRow } from '../records.js';
import { onS3 } from '../s3-errors.js';
import { idParams, logicalBucketSchema } from '../schemas.js';

/** The cursor of a listing: the last (bucket, name) handed out, opaque to clients. */
const cursorPosition = z.tuple([z.string(), z.string()]);

export const encodeCursor = (row: { bucket: string; name: string }): string => Buffer.from(JSON.stringify([row.bucket, row.name])).toString('base64url');

function decodeCursor(cursor: string): [string, string] {
  try {
    return cursorPosition.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
  } catch {
    throw fail('validation_failed', 'cursor: not a cursor this listing gave');
  }
}

const listQuery = z.object({
  bucket: logicalBucketSchema.optional(),
  prefix: z.string().max(1024).optional().describe('only names starting with this'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(4096).optional().describe('nextCursor of the previous page'),
});

const fileList = z.object({
  files: z.array(fileSchema),
  nextCursor: z.string().nullable().describe('null on the last page'),
});

export const listFiles = defineOperation({
  method: 'get',
  path: '/storage/files',
  summary: "The tenant's files (files:read), ordered by bucket and name, a page at a time",
  tag: 'files',
  auth: 'token',
  query: listQuery,
  responses: {
    200: { description: 'a page of files', schema: fileList },
    403: { description: 'missing files:read, or another tenant' },
  },
  async handler(context) {
    const caller = await storageCaller(context, 'files:read');
    const { deps, query } = context;
    const after = query.cursor === undefined ? null : decodeCursor(query.cursor);
    const { rows } = await inCallerTenant(deps, caller, (client) =>
      client.query<FileRow>({
        name: 'storage-files-list',
        // Keyset on (bucket, name), the files_name_taken index after tenant_id: every page costs the same.
        text: `SELECT ${FILE_COLUMNS} FROM files
               WHERE ($1::text IS NULL OR bucket = $1)
                 AND ($2::text IS NULL OR starts_with(name, $2))
                 AND ($3::text IS NULL OR (bucket, name) > ($3::text, $4::text))
               ORDER BY bucket, name
               LIMIT $5`,
        values: [query.bucket ?? null, query.prefix ?? null, after?.[0] ?? null, after?.[1] ?? null, query.limit + 1],
      }),
    );
    const page = rows.slice(0, query.limit);
    const last = page[page.length - 1];
    return {
      body: {
        files: page.map(fileJson),
        nextCursor: rows.length > query.limit && last ? encodeCursor(last) : null,
      } satisfies z.infer<typeof fileList>,
    };
  },
});

async function readFile(client: PoolClient, id: string): Promise<FileRow> {
  const { rows } = await client.query<FileRow>({ name: 'storage-file-read', text: `SELECT ${FILE_COLUMNS} FROM files WHERE id = $1`, values: [id] });
  if (!rows[0]) throw fail('file_not_found');
  return rows[0];
}

export const downloadFile = defineOperation({
  method: 'get',
  path: '/storage/files/:id',
  summary: 'Downloads a file (files:read): a redirect to a presigned GET, valid a few minutes, that saves it under its name',
  tag: 'files',
  auth: 'token',
  params: idParams,
  responses: {
    302: { description: 'Location: the presigned GET (the S3 server answers the content)' },
    404: { description: "file_not_found (also for another tenant's file)" },
  },
  async handler(context) {
    const caller = await storageCaller(context, 'files:read');
    const { deps, params, log } = context;
    const file = await inCallerTenant(deps, caller, (client) => readFile(client, params.id));
    const location = deps.objects.location(caller.tenantId);
    const url = await onS3(log, 'presign download', () =>
      deps.objects.presignDownload({ bucket: location.bucket, key: deps.objects.key(location, file.bucket, file.name), name: file.name, ttlSeconds: deps.downloadTtlSeconds }),
    );
    return { status: 302, headers: { Location: url, 'Cache-Control': 'no-store' } };
  },
});

export const fileMeta = defineOperation({
  method: 'get',
  path: '/storage/files/:id/meta',
  summary: "A file's record (files:read)",
  tag: 'files',
  auth: 'token',
  params: idParams,
  responses: {
    200: { description: 'the file', schema: z.object({ file: fileSchema }) },
    404: { description: "file_not_found (also for another tenant's file)" },
  },
  async handler(context) {
    const caller = await storageCaller(context, 'files:read');
    const file = await inCallerTenant(context.deps, caller, (client) => readFile(client, context.params.id));
    return { body: { file: fileJson(file) } };
  },
});

export const deleteFile = defineOperation({
  method: 'delete',
  path: '/storage/files/:id',
  summary: 'Deletes a file (files:write): its object and its record; its bytes no longer count against the storage limit',
  tag: 'files',
  auth: 'token',
  params: idParams,
  responses: {
    204: { description: 'deleted' },
    404: { description: "file_not_found (also for another tenant's file)" },
  },
  async handler(context) {
    const caller = await storageCaller(context, 'files:write');
    const { deps, params, log } = context;
    await inCallerTenant(deps, caller, async (client) => {
      // Its upload's file_id becomes NULL: were its POST policy still valid, a replay could store
      // the bytes again, and the sweeper looks at the key once the policy is past.
      const { rows } = await client.query<{ bucket: string; name: string }>({
        name: 'storage-file-delete',
        text: 'DELETE FROM files WHERE id = $1 RETURNING bucket, name',
        values: [params.id],
      });
      const file = rows[0];
      if (!file) throw fail('file_not_found');
      // The row goes only if the object does (the transaction commits after), and until it
      // commits no upload of the same name starts: its file is still there for them.
      const location = deps.objects.location(caller.tenantId);
      await onS3(log, 'remove file', () => deps.objects.remove(location.bucket, deps.objects.key(location, file.bucket, file.name)));
    });
    log.info({ tenantId: caller.tenantId, fileId: params.id }, 'file deleted');
    return { status: 204 };
  },
});
