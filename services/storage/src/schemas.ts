import { z } from 'zod';

/** A logical bucket: what the database checks (files.bucket), a DNS label. */
export const logicalBucketSchema = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'must be 1–63 characters of a-z, 0-9 and -, starting and ending with a letter or digit')
  .describe('A logical bucket of the tenant (a DNS label); it becomes the first segment of the S3 key.');

/** Why a file name is refused, or null: the same rules as app.is_valid_file_name, which the database checks again. */
export function fileNameProblem(name: string): string | null {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes < 1 || bytes > 1024) return 'must be 1–1024 bytes of UTF-8';
  // A lone surrogate has no UTF-8 form: it would reach the database as U+FFFD, another name.
  if (/\p{Cs}/u.test(name)) return 'must be valid Unicode';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'must not contain control characters';
  if (name.includes('\\')) return 'must not contain a backslash';
  if (name.startsWith('/') || name.endsWith('/')) return 'must not start or end with /';
  for (const segment of name.split('/')) {
    if (segment === '') return 'must not contain an empty segment (//)';
    if (segment === '.' || segment === '..') return 'must not contain a . or .. segment';
    // File-backed S3 servers (MinIO) store a segment as a file name; longer ones they refuse
    // only when the upload arrives, after its bytes were reserved.
    if (Buffer.byteLength(segment, 'utf8') > 255) return 'must not have a segment over 255 bytes';
  }
  return null;
}

/** A file name: path-like, `/`-separated segments, nothing that could climb out of the tenant's prefix. */
export const fileNameSchema = z
  .string()
  .superRefine((name, context) => {
    const problem = fileNameProblem(name);
    if (problem) context.addIssue({ code: 'custom', message: problem });
  })
  .describe('The file name within its bucket: 1–1024 bytes of UTF-8, `/`-separated segments of at most 255 bytes, none empty, `.` or `..`; no control characters or backslash.');

/** A media type as the database checks it: `type/subtype` (RFC 6838 names), parameters allowed (printable ASCII). */
export const contentTypeSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(?: *;[ -~]*)?$/, 'must be a media type, type/subtype with optional parameters')
  .describe('The media type, `type/subtype` (parameters allowed); the upload must send exactly this Content-Type, and downloads are served with it.');

/** The content's SHA-256, hex (upper case accepted, kept in lower case as the database stores it). */
export const sha256HexSchema = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, 'must be the SHA-256 of the content as 64 hexadecimal characters')
  .transform((hex) => hex.toLowerCase())
  .describe('The SHA-256 of the content, 64 hexadecimal characters (not base64). The S3 server computes it on upload and refuses a different one.');

export const sizeSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).describe('The exact size in bytes.');

export const idParams = z.object({ id: z.uuid() });
