import { createReadStream } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { normaliseEmail } from '../../shared/src/email.js';
import { CliError } from './errors.js';
import { ROLES, type TenantRole } from '../../shared/src/roles.js';

/**
 * Reading a tenant export is reading untrusted input: whoever hands an operator an archive
 * may have written every byte of it. This module unpacks only the layout an export has
 * (regular files under known names, bounded sizes, no links), and checks the manifest and
 * every row with zod before the import writes anything.
 */

export const EXPORT_FORMAT = 'tenantry-tenant-export';
export const EXPORT_FORMAT_VERSION = 1;

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Sizes an export never comes near; a bigger entry is a bomb, not data. */
export const ARCHIVE_LIMITS = {
  manifestBytes: 1 * MiB,
  /** One JSON-lines file is parsed in memory: V8 strings stop near 512 MiB. */
  rowsFileBytes: 256 * MiB,
  /** The largest object one S3 PUT takes. */
  objectBytes: 5 * GiB,
  totalBytes: 64 * GiB,
  entries: 1_000_000,
} as const;

const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const TABLE_FILE = /^tables\/[a-z_][a-z0-9_]{0,62}\.jsonl$/;
const OBJECT_FILE = /^objects\/[0-9]{6,9}$/;
const DIRECTORIES = new Set(['tables', 'objects']);

/** The only kinds of entry an export contains, and how big each may be. */
function entryLimit(name: string): number | undefined {
  if (name === 'manifest.json') return ARCHIVE_LIMITS.manifestBytes;
  if (name === 'users.jsonl' || TABLE_FILE.test(name)) return ARCHIVE_LIMITS.rowsFileBytes;
  if (OBJECT_FILE.test(name)) return ARCHIVE_LIMITS.objectBytes;
  return undefined;
}

const isArchiveFile = (name: string) => entryLimit(name) !== undefined && name !== 'manifest.json';

const formatBytes = (bytes: number) => (bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${(bytes / MiB).toFixed(1)} MiB`);

interface TarEntryHeader {
  path: string;
  type: string;
  size?: number;
}

/** Why an entry may not be unpacked, or undefined when it may. */
function refuseEntry(entry: TarEntryHeader, seen: Set<string>, total: { bytes: number; entries: number }): string | undefined {
  const raw = entry.path;
  if (raw.includes('\\') || raw.includes('\0')) return `entry ${JSON.stringify(raw)} has a character no export uses`;
  if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) return `entry ${JSON.stringify(raw)} is an absolute path`;
  if (raw.split('/').some((segment) => segment === '..')) return `entry ${JSON.stringify(raw)} climbs out of the archive (..)`;
  const name = raw.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (entry.type === 'Directory') {
    if (!DIRECTORIES.has(name)) return `entry ${JSON.stringify(raw)} is a directory no export has`;
    return undefined;
  }
  if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
    return `entry ${JSON.stringify(raw)} is a ${entry.type === 'Link' ? 'hard' : 'symbolic'} link — an export holds regular files only`;
  }
  if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') {
    return `entry ${JSON.stringify(raw)} is a ${entry.type} — an export holds regular files only`;
  }
  const limit = entryLimit(name);
  if (limit === undefined) return `entry ${JSON.stringify(raw)} is not a file an export has`;
  if (seen.has(name)) return `entry ${name} appears twice`;
  seen.add(name);
  const size = entry.size ?? 0;
  if (size > limit) return `entry ${name} is ${formatBytes(size)}, more than the ${formatBytes(limit)} such a file may have`;
  total.bytes += size;
  total.entries += 1;
  if (total.bytes > ARCHIVE_LIMITS.totalBytes) return `the archive unpacks to more than ${formatBytes(ARCHIVE_LIMITS.totalBytes)}`;
  if (total.entries > ARCHIVE_LIMITS.entries) return `the archive has more than ${ARCHIVE_LIMITS.entries} entries`;
  return undefined;
}

const notAnExport = (file: string, cause: string) =>
  new CliError(`${file} is not a tenant export this version can import: ${cause} — give a file written by \`tenantry tenant export\``);

/**
 * Unpacks `file` into `work`, refusing anything an export does not contain. Resolves only
 * once every write has finished, failed or not, so the caller can remove `work` afterwards
 * (tar's strict mode rejects at the first problem while it is still writing: removing the
 * directory then raced the writes and failed with ENOTEMPTY, hiding the real cause).
 */
export async function unpackArchive(file: string, work: string): Promise<void> {
  const tar = await import('tar');
  const seen = new Set<string>();
  const total = { bytes: 0, entries: 0 };
  let refusal: string | undefined;
  let warning: string | undefined;
  let failure: unknown;
  try {
    await tar.x({
      file,
      cwd: work,
      strict: false,
      preservePaths: false,
      noChmod: true,
      filter: (_path, entry) => {
        if (refusal) return false;
        const header = entry as unknown as TarEntryHeader;
        refusal = refuseEntry({ path: header.path, type: header.type, size: header.size }, seen, total);
        return refusal === undefined;
      },
      onwarn: (code, message) => {
        warning ??= `${code}: ${String(message)}`;
      },
    });
  } catch (error) {
    failure = error;
  }
  if (refusal) throw notAnExport(file, refusal);
  if (failure) throw notAnExport(file, (failure as Error).message ?? String(failure));
  if (warning) throw notAnExport(file, warning);
  if (!seen.has('manifest.json')) throw notAnExport(file, 'it has no manifest.json');
}

// ---------------------------------------------------------------------------
// The manifest and the rows.
// ---------------------------------------------------------------------------

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const archiveFile = (pattern: RegExp, what: string) =>
  z.string().refine((value) => pattern.test(value), { message: `names a file outside the archive's ${what}` });

/**
 * An object's key relative to the tenant's location (`<logical bucket>/<name>` for a file).
 * An import puts it under the new tenant's bucket or `<tenant-id>/` prefix, so a key must not
 * be able to mean anything else there: no empty, `.` or `..` segment, no leading `/`, no
 * backslash, no control character.
 */
const objectKeySchema = z
  .string()
  .min(1)
  .refine((key) => Buffer.byteLength(key, 'utf8') <= 1024, 'is longer than 1024 bytes')
  // eslint-disable-next-line no-control-regex
  .refine((key) => !/[\u0000-\u001f\u007f\\]/.test(key), 'has a control character or a backslash')
  .refine((key) => key.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..'), 'has an empty, . or .. segment');

const manifestSchema = z
  .object({
    format: z.literal(EXPORT_FORMAT),
    format_version: z.literal(EXPORT_FORMAT_VERSION),
    created_at: z.string().max(64),
    source: z.object({ tenant_id: z.uuid(), slug: z.string().min(1).max(63), name: z.string().max(200) }),
    tables: z
      .array(z.object({ name: z.string().regex(TABLE_NAME, 'is not a table name'), file: archiveFile(TABLE_FILE, 'tables/'), rows: count }))
      .max(1000)
      .refine((tables) => new Set(tables.map((table) => table.name)).size === tables.length, 'names a table twice')
      .refine((tables) => new Set(tables.map((table) => table.file)).size === tables.length, 'names a file twice'),
    users: z.object({ file: z.literal('users.jsonl', { message: 'names a file outside the archive (users.jsonl)' }), rows: count }),
    objects: z
      .array(
        z.object({
          key: objectKeySchema,
          file: archiveFile(OBJECT_FILE, 'objects/'),
          size: count,
          /** Written by the exporter; an import hashes the bytes itself and trusts only that. */
          sha256: z.string().regex(/^[0-9a-f]{64}$/, 'is not a hex SHA-256').optional(),
        }),
      )
      .refine((objects) => new Set(objects.map((object) => object.key)).size === objects.length, 'names an object key twice'),
  })
  .strict();

export type Manifest = z.infer<typeof manifestSchema>;

/** One line of zod's complaint: where, then what. */
function describeIssues(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const where = issue.path.length > 0 ? issue.path.join('.') : 'the value';
  const received = 'input' in issue && issue.input !== undefined ? ` (${JSON.stringify(issue.input)?.slice(0, 80)})` : '';
  return `${where} ${issue.message}${received}`;
}

/** A path named by the manifest, refused when it would leave the unpacked archive or is not a regular file. */
export async function archivedFile(root: string, relative: string): Promise<string> {
  const resolved = path.resolve(root, relative);
  if (!resolved.startsWith(`${root}${path.sep}`)) {
    throw new CliError(`the export names a file outside itself (${relative}) — use a file written by \`tenantry tenant export\``);
  }
  const stats = await lstat(resolved).catch(() => undefined);
  if (!stats) throw new CliError(`the export lacks ${relative}, which its manifest names — use a complete file written by \`tenantry tenant export\``);
  if (!stats.isFile()) throw new CliError(`${relative} in the export is not a regular file — use a file written by \`tenantry tenant export\``);
  return resolved;
}

export async function readManifest(work: string, file: string): Promise<Manifest> {
  const text = await readFile(await archivedFile(work, 'manifest.json'), 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw notAnExport(file, `manifest.json is not JSON (${(error as Error).message})`);
  }
  const header = z.object({ format: z.literal(EXPORT_FORMAT), format_version: z.literal(EXPORT_FORMAT_VERSION) }).safeParse(parsed);
  if (!header.success) {
    throw new CliError(`${file} is not a version ${EXPORT_FORMAT_VERSION} tenant export — give a file written by \`tenantry tenant export\``);
  }
  const manifest = manifestSchema.safeParse(parsed);
  if (!manifest.success) {
    const issue = manifest.error.issues[0]!;
    if (issue.message.startsWith('names a file outside')) {
      const value = issue.path.reduce<unknown>((node, key) => (node as Record<PropertyKey, unknown>)?.[key], parsed);
      throw new CliError(`the export names a file outside itself (${String(value)}) — use a file written by \`tenantry tenant export\``);
    }
    throw notAnExport(file, `manifest.json: ${describeIssues(manifest.error)}`);
  }
  return manifest.data;
}

export type Row = Record<string, z.core.util.JSONType>;

/** Addresses come in the one form Tenantry stores and compares (services/shared/src/email.ts). */
const email = z.string().transform((value, context) => {
  const normalised = normaliseEmail(value);
  if (normalised === null) {
    context.addIssue({ code: 'custom', message: 'is not an email address Tenantry can store', input: value });
    return z.NEVER;
  }
  return normalised;
});
export type Role = TenantRole;
const role = z.enum(ROLES);

/** A row as a JSON object of column names; what the columns hold the database's types check. */
const genericRow = z.record(z.string().regex(TABLE_NAME, 'is not a column name'), z.json());

/** A row whose named columns are checked (and emails normalised); the others stay JSON for the database to check. */
const rowWith = (shape: z.ZodRawShape) => z.object(shape).catchall(z.json());

/** The columns an import reads for its decisions, checked before they are used. */
export const rowSchemas = {
  users: rowWith({ id: z.uuid(), email, display_name: z.string().max(200).optional() }),
  tenants: rowWith({
    id: z.uuid(),
    name: z.string().trim().min(1).max(200),
    settings: z.record(z.string(), z.json()).optional(),
    metadata: z.record(z.string(), z.json()).optional(),
    max_users: z.number().int().positive().nullable().optional(),
    max_storage_bytes: z.number().int().positive().nullable().optional(),
    max_api_requests_month: z.number().int().positive().nullable().optional(),
  }),
  tenant_members: rowWith({ user_id: z.uuid(), role }),
  tenant_domains: rowWith({ domain: z.string().min(1).max(253) }),
  tenant_invitations: rowWith({ email, role, status: z.enum(['pending', 'accepted', 'revoked', 'expired']), expires_at: z.string().optional() }),
} as const;

/** Reads a JSON-lines file of the archive, every line checked by `schema`; the count must be the manifest's. */
export async function readRows(work: string, entry: { file: string; rows: number }, schema: z.ZodType = genericRow): Promise<Row[]> {
  if (!isArchiveFile(entry.file)) {
    throw new CliError(`the export names a file outside itself (${entry.file}) — use a file written by \`tenantry tenant export\``);
  }
  const rows: Row[] = [];
  const lines = createInterface({ input: createReadStream(await archivedFile(work, entry.file)), crlfDelay: Infinity });
  let number = 0;
  for await (const line of lines) {
    number += 1;
    if (!line.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new CliError(`${entry.file} line ${number} is not JSON (${(error as Error).message}) — use a file written by \`tenantry tenant export\``);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      throw new CliError(`${entry.file} line ${number}: ${describeIssues(parsed.error)} — use a file written by \`tenantry tenant export\``);
    }
    rows.push(parsed.data as Row);
  }
  if (rows.length !== entry.rows) {
    throw new CliError(`${entry.file} has ${rows.length} rows where the manifest says ${entry.rows} — the export is incomplete or was edited`);
  }
  return rows;
}

