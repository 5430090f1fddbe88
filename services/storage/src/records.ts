import { z } from 'zod';

/** A files row as node-postgres reads it (bigint as a string). */
export interface FileRow {
  id: string;
  bucket: string;
  name: string;
  size: string;
  content_type: string;
  sha256: string;
  uploaded_by: string | null;
  created_at: Date;
}

export const FILE_COLUMNS = 'id, bucket, name, size, content_type, sha256, uploaded_by, created_at';

export const fileSchema = z.object({
  id: z.uuid(),
  bucket: z.string(),
  name: z.string(),
  size: z.number().int(),
  contentType: z.string(),
  sha256: z.string().describe('hex'),
  uploadedBy: z.uuid().nullable(),
  createdAt: z.string().describe('ISO 8601'),
});

export type FileJson = z.infer<typeof fileSchema>;

export const fileJson = (row: FileRow): FileJson => ({
  id: row.id,
  bucket: row.bucket,
  name: row.name,
  size: Number(row.size),
  contentType: row.content_type,
  sha256: row.sha256,
  uploadedBy: row.uploaded_by,
  createdAt: row.created_at.toISOString(),
});

export type UploadStatus = 'pending' | 'completed' | 'expired' | 'refused';

/** A file_uploads row as node-postgres reads it. */
export interface UploadRow {
  id: string;
  bucket: string;
  name: string;
  size: string;
  content_type: string;
  sha256: string;
  created_by: string | null;
  created_at: Date;
  expires_at: Date;
  status: UploadStatus;
  completed_at: Date | null;
  file_id: string | null;
}

export const UPLOAD_COLUMNS = 'id, bucket, name, size, content_type, sha256, created_by, created_at, expires_at, status, completed_at, file_id';

export const uploadSchema = z.object({
  id: z.uuid(),
  bucket: z.string(),
  name: z.string(),
  size: z.number().int(),
  contentType: z.string(),
  sha256: z.string().describe('hex'),
  status: z.enum(['pending', 'completed', 'expired', 'refused']),
  createdAt: z.string(),
  expiresAt: z.string().describe('the POST policy expires then; the upload must be completed before'),
  fileId: z.uuid().nullable(),
});

export const uploadJson = (row: UploadRow): z.infer<typeof uploadSchema> => ({
  id: row.id,
  bucket: row.bucket,
  name: row.name,
  size: Number(row.size),
  contentType: row.content_type,
  sha256: row.sha256,
  status: row.status,
  createdAt: row.created_at.toISOString(),
  expiresAt: row.expires_at.toISOString(),
  fileId: row.file_id,
});
