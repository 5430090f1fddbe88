import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { hashToken, newOpaqueToken } from '../../shared/src/secrets.js';
import { listTenantTables, type TenantTable } from '../../shared/src/db/isolation-lint.js';
import type { NamespaceStores } from '../../shared/src/storage/namespace.js';
import { adminPool, inTransaction, namespaceKit, namespaceStores, s3Client, storageSettings, type Queryable } from './context.js';
import { CliError, explainDatabaseError, isPgError } from './errors.js';
import { progress } from './progress.js';
import { findTenant, removeNamespacesQuietly } from './tenants.js';
import {
  archivedFile,
  EXPORT_FORMAT,
  EXPORT_FORMAT_VERSION,
  readManifest,
  readRows,
  rowSchemas,
  unpackArchive,
  type Manifest,
  type Role,
  type Row as ArchivedRow,
} from './transfer-archive.js';
import { findUser } from './users.js';
import { isUuid, quoteIdent } from '../../shared/src/ids.js';
import { refusingConstraint } from '../../shared/src/errors/database.js';
import { MAILED_PATHS, mailedLink } from '../../shared/src/mail/templates.js';

const qualified = (table: { schema: string; table: string }) => `${quoteIdent(table.schema)}.${quoteIdent(table.table)}`;

type Row = Record<string, unknown>;

/** Columns that reference users(id), per table: their values name the users an export carries. */
async function userReferences(client: pg.ClientBase, schema: string): Promise<Map<string, string[]>> {
  const { rows } = await client.query<{ table: string; column: string }>(
    `SELECT c.conrelid::regclass::text AS table, a.attname AS column
       FROM pg_constraint c
       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
      WHERE c.contype = 'f' AND c.confrelid = format('%I.users', $1::text)::regclass AND array_length(c.conkey, 1) = 1`,
    [schema],
  );
  const byTable = new Map<string, string[]>();
  for (const row of rows) byTable.set(row.table, [...(byTable.get(row.table) ?? []), row.column]);
  return byTable;
}

/** Tenant tables ordered so that a table comes after the tenant tables it references. */
async function insertionOrder(client: pg.ClientBase, tables: TenantTable[]): Promise<TenantTable[]> {
  const { rows } = await client.query<{ child: string; parent: string }>(
    `SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent
       FROM pg_constraint WHERE contype = 'f' AND conrelid <> confrelid`,
  );
  const names = new Set(tables.map((table) => table.table));
  const ordered: TenantTable[] = [];
  const placed = new Set<string>();
  const visit = (table: TenantTable, trail: Set<string>) => {
    if (placed.has(table.table) || trail.has(table.table)) return;
    trail.add(table.table);
    for (const edge of rows) {
      if (edge.child === table.table && names.has(edge.parent)) visit(tables.find((t) => t.table === edge.parent)!, trail);
    }
    placed.add(table.table);
    ordered.push(table);
  };
  for (const table of tables) visit(table, new Set());
  return ordered;
}

async function writeJsonLines(file: string, rows: Row[]): Promise<void> {
  const stream = createWriteStream(file);
  for (const row of rows) {
    if (!stream.write(`${JSON.stringify(row)}\n`)) await new Promise<void>((resolve) => stream.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

export interface ExportResult {
  file: string;
  manifest: Manifest;
}

/** The hex SHA-256 of a file's bytes, streamed. */
async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A file row's object key, relative to the tenant's location (the storage service's own key). */
const fileKey = (row: Row): string => `${String(row.bucket)}/${String(row.name)}`;

/**
 * Copies every object under the tenant's location (its bucket, or `<id>/` in the shared one)
 * into the archive, keyed relative to that location, so an import can put them under another
 * tenant id and in either layout. Every `files` row must find its object, of its size and
 * checksum: an archive the import would refuse is not written.
 */
async function exportObjects(work: string, manifest: Manifest, fileRows: Row[], start: (total: number) => void, step: () => void): Promise<void> {
  const { tenantStorageLocation } = await import('../../shared/src/storage/location.js');
  const location = tenantStorageLocation(manifest.source.tenant_id, await storageSettings());
  const s3 = await s3Client();
  const listed: Array<{ key: string; size: number }> = [];
  if (await s3.bucketExists(location.bucket)) {
    for await (const item of s3.listObjectsV2(location.bucket, location.prefix, true)) {
      // A zero-byte `dir/` marker is a console's folder, not data.
      if (!item.name || !item.name.startsWith(location.prefix) || item.name.endsWith('/')) continue;
      listed.push({ key: item.name.slice(location.prefix.length), size: item.size });
    }
  }
  const files = new Map(fileRows.map((row) => [fileKey(row), row]));
  start(listed.length);
  if (listed.length > 0) await mkdir(path.join(work, 'objects'));
  for (const [index, item] of listed.entries()) {
    const file = `objects/${String(index + 1).padStart(6, '0')}`;
    await s3.fGetObject(location.bucket, `${location.prefix}${item.key}`, path.join(work, file));
    const sha256 = await fileSha256(path.join(work, file));
    const row = files.get(item.key);
    if (row && (Number(row.size) !== item.size || row.sha256 !== sha256)) {
      throw new CliError(
        `file ${item.key} of tenant ${manifest.source.slug} does not match its object in S3 (recorded ${String(row.size)} bytes, sha256 ${String(row.sha256)}; stored ${item.size} bytes, sha256 ${sha256}) — nothing was exported; delete the file or upload it again`,
      );
    }
    files.delete(item.key);
    manifest.objects.push({ key: item.key, file, size: item.size, sha256 });
    step();
  }
  const missing = [...files.keys()];
  if (missing.length > 0) {
    throw new CliError(
      `${missing.length} file(s) of tenant ${manifest.source.slug} have no object in ${location.bucket} (first: ${missing[0]}) — nothing was exported; delete those files or restore their objects`,
    );
  }
}

/** Writes a tenant's rows, member users (without password hashes) and objects to a .tar.gz. */
export async function exportTenant(tenantRef: string, output: string): Promise<ExportResult> {
  const bar = progress();
  const work = await mkdtemp(path.join(os.tmpdir(), 'tenantry-export-'));
  try {
    await mkdir(path.join(work, 'tables'));
    const client = await adminPool().connect();
    let manifest: Manifest;
    let fileRows: Row[] = [];
    try {
      // One snapshot for every table.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const tenant = await findTenant(tenantRef, client);
      const tables = await listTenantTables(client);
      const userColumns = await userReferences(client, 'public');
      manifest = {
        format: EXPORT_FORMAT,
        format_version: EXPORT_FORMAT_VERSION,
        created_at: new Date().toISOString(),
        source: { tenant_id: tenant.id, slug: tenant.slug, name: tenant.name },
        tables: [],
        users: { file: 'users.jsonl', rows: 0 },
        objects: [],
      };
      const userIds = new Set<string>();
      bar.start(tables.length, `exporting ${tenant.slug}: tables`);
      for (const table of tables) {
        const { rows } = await client.query<{ row: Row }>(
          `SELECT to_jsonb(x) AS row FROM ${qualified(table)} x WHERE ${quoteIdent(table.tenantColumn)} = $1`,
          [tenant.id],
        );
        const data = rows.map((r) => r.row);
        if (table.table === 'files') fileRows = data;
        for (const column of userColumns.get(table.table) ?? []) {
          for (const row of data) if (typeof row[column] === 'string') userIds.add(row[column] as string);
        }
        const file = `tables/${table.table}.jsonl`;
        await writeJsonLines(path.join(work, file), data);
        manifest.tables.push({ name: table.table, file, rows: data.length });
        bar.increment();
      }
      const { rows: users } = await client.query<{ row: Row }>(
        `SELECT to_jsonb(u) - 'password_hash' AS row FROM users u WHERE u.id = ANY($1::uuid[]) ORDER BY u.email`,
        [[...userIds]],
      );
      await writeJsonLines(path.join(work, 'users.jsonl'), users.map((r) => r.row));
      manifest.users.rows = users.length;
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }

    await exportObjects(work, manifest, fileRows, (total) => bar.start(total, `exporting ${manifest.source.slug}: objects`), () => bar.increment());
    bar.stop();
    await writeFile(path.join(work, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const entries = ['manifest.json', 'users.jsonl', 'tables', ...(manifest.objects.length > 0 ? ['objects'] : [])];
    const tar = await import('tar');
    await tar.c({ gzip: true, file: output, cwd: work, portable: true }, entries);
    // Taking a tenant's data out is worth a line in its audit log.
    await inTransaction(async (client) => {
      await client.query(
        `INSERT INTO audit_log (tenant_id, action, target_type, target_id, after, reason)
         VALUES ($1::uuid, 'tenants.export', 'tenants', $1::text, $2::jsonb, nullif(current_setting('tenantry.reason', true), ''))`,
        [
          manifest.source.tenant_id,
          JSON.stringify({
            file: path.basename(output),
            rows: Object.fromEntries(manifest.tables.map((table) => [table.name, table.rows])),
            users: manifest.users.rows,
            objects: manifest.objects.length,
          }),
        ],
      );
    });
    return { file: output, manifest };
  } finally {
    bar.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/** Replaces every string equal to a remapped uuid, however deep (ids in jsonb and text too). */
function remap(value: unknown, ids: Map<string, string>): unknown {
  if (typeof value === 'string') return isUuid(value) ? (ids.get(value.toLowerCase()) ?? value) : value;
  if (Array.isArray(value)) return value.map((item) => remap(item, ids));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, remap(item, ids)]));
  }
  return value;
}

/** Columns a row may be inserted with: not generated, not GENERATED ALWAYS identities. */
async function insertableColumns(client: pg.ClientBase, table: { schema: string; table: string }): Promise<string[]> {
  const { rows } = await client.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns
      WHERE table_schema = $1 AND table_name = $2 AND is_generated = 'NEVER' AND NOT (is_identity = 'YES' AND identity_generation = 'ALWAYS')
      ORDER BY ordinal_position`,
    [table.schema, table.table],
  );
  return rows.map((row) => row.column_name);
}

/** Single-column uuid primary keys of a table: the ids an import gives new values. */
async function uuidPrimaryKey(client: pg.ClientBase, table: { schema: string; table: string }): Promise<string | null> {
  const { rows } = await client.query<{ column: string }>(
    `SELECT a.attname AS column
       FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
      WHERE i.indrelid = format('%I.%I', $1::text, $2::text)::regclass AND i.indisprimary AND i.indnatts = 1
        AND a.atttypid = 'uuid'::regtype`,
    [table.schema, table.table],
  );
  return rows[0]?.column ?? null;
}

async function insertRows(client: pg.ClientBase, table: { schema: string; table: string }, rows: Row[]): Promise<void> {
  if (rows.length === 0) return;
  // Only the columns the file has: a column added since the export takes its default.
  const present = new Set(rows.flatMap((row) => Object.keys(row)));
  const columns = (await insertableColumns(client, table)).filter((column) => present.has(column));
  const list = columns.map(quoteIdent).join(', ');
  for (let start = 0; start < rows.length; start += 500) {
    await client.query(
      `INSERT INTO ${qualified(table)} (${list}) SELECT ${list} FROM jsonb_populate_recordset(NULL::${qualified(table)}, $1::jsonb)`,
      [JSON.stringify(rows.slice(start, start + 500))],
    );
  }
}

/**
 * Tenant tables an archive brings no rows into, whatever it holds: what they grant is not
 * the file's to say. An API key's hash lets whoever holds the key in, so the tenant makes
 * new keys; a subscription ties the tenant to someone's Stripe customer, so billing is
 * set up again.
 */
const NOT_IMPORTED = ['api_keys', 'tenant_subscriptions'] as const;
type NotImported = (typeof NOT_IMPORTED)[number];
const isNotImported = (table: string): table is NotImported => (NOT_IMPORTED as readonly string[]).includes(table);

/** The tenant columns an import takes from the archive; status, plan and owner are the operator's. */
const TENANT_COLUMNS_TAKEN = ['name', 'settings', 'metadata', 'created_at', 'updated_at'] as const;
const TENANT_LIMIT_COLUMNS = ['max_users', 'max_storage_bytes', 'max_api_requests_month'] as const;
/** Domain columns taken; verification and the primary flag start over. */
const DOMAIN_COLUMNS_TAKEN = ['id', 'domain', 'created_at', 'updated_at'] as const;
/** Invitation columns kept as history (never a usable token). */
const INVITATION_COLUMNS_TAKEN = [
  'id', 'email', 'role', 'status', 'invited_by', 'expires_at', 'last_sent_at', 'accepted_at', 'accepted_by', 'revoked_at', 'created_at', 'updated_at',
] as const;

const pick = (row: Row, columns: readonly string[]): Row =>
  Object.fromEntries(columns.filter((column) => Object.hasOwn(row, column)).map((column) => [column, row[column]]));

export interface ImportOptions {
  slug?: string;
  /** Id or email of an existing, verified user: the new tenant's only member, as owner. */
  owner: string;
  /** Plan id; the free plan unless given. */
  plan?: string;
  /** Take the archive's per-tenant limit overrides (max_users …) instead of the plan's. */
  keepLimits?: boolean;
  /** The auth service's PUBLIC_URL: invitation links instead of bare tokens. */
  publicUrl?: string;
}

export interface ImportedInvitation {
  email: string;
  role: Role;
  /** Shown once: only its hash is stored. The CLI sends no mail. */
  token: string;
  link: string | null;
}

export interface ImportResult {
  tenant_id: string;
  slug: string;
  source: Manifest['source'];
  plan_id: string;
  owner: { user_id: string; email: string };
  limits_from_archive: boolean;
  archived_limits_ignored: boolean;
  rows: Record<string, number>;
  domains_unverified: string[];
  invitations: ImportedInvitation[];
  not_imported: Record<NotImported, number>;
  objects: number;
}

const DEFAULT_PLAN = 'free';

/** The plan an import puts the tenant on: refused by name, with the choices, before anything is unpacked. */
async function checkPlan(planId: string): Promise<void> {
  const { rows } = await adminPool().query<{ id: string }>(`SELECT id FROM plans ORDER BY sort_order, id`);
  if (!rows.some((row) => row.id === planId)) {
    throw new CliError(`plan '${planId}' does not exist — use one of ${rows.map((row) => row.id).join(', ')}`);
  }
}

/** The owner an operator names: an existing account whose address is proven and that may log in. */
async function checkOwner(reference: string, db: Queryable = adminPool()) {
  const user = await findUser(reference, db);
  if (!user.email_verified_at) {
    throw new CliError(`user '${user.email}' has not verified their email address — the owner of an imported tenant must be a verified user`);
  }
  if (user.disabled_at) throw new CliError(`user '${user.email}' is disabled — choose an active user as --owner`);
  return user;
}

function invitationLink(publicUrl: string | undefined, token: string): string | null {
  return publicUrl ? mailedLink(publicUrl, MAILED_PATHS.acceptInvitation, token) : null;
}

/** Removes the unpacked archive; a failure to do so is reported, never put in the place of the import's own error. */
async function removeWorkDirectory(work: string): Promise<void> {
  try {
    await rm(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  } catch (error) {
    process.stderr.write(`tenantry: could not remove the temporary directory ${work} (${(error as Error).message}) — remove it by hand\n`);
  }
}

interface ValidatedArchive {
  manifest: Manifest;
  users: ArchivedRow[];
  tables: Map<string, ArchivedRow[]>;
}

/** Every file the manifest names, every row checked: an archive is refused whole before anything is written. */
async function readArchive(work: string, file: string): Promise<ValidatedArchive> {
  const manifest = await readManifest(work, file);
  const users = await readRows(work, manifest.users, rowSchemas.users);
  const tables = new Map<string, ArchivedRow[]>();
  for (const entry of manifest.tables) {
    const schema = Object.hasOwn(rowSchemas, entry.name) ? rowSchemas[entry.name as keyof typeof rowSchemas] : undefined;
    tables.set(entry.name, await readRows(work, entry, schema));
  }
  const tenantRows = tables.get('tenants') ?? [];
  if (tenantRows.length !== 1) {
    throw new CliError(`the export has ${tenantRows.length} tenants rows where it needs exactly one — use a file written by \`tenantry tenant export\``);
  }
  for (const object of manifest.objects) await archivedFile(work, object.file);
  await checkFilesHaveTheirObjects(work, manifest, tables.get('files') ?? []);
  const userIds = new Set(users.map((user) => String(user.id).toLowerCase()));
  for (const member of tables.get('tenant_members') ?? []) {
    if (!userIds.has(String(member.user_id).toLowerCase())) {
      throw new CliError(`tenant_members names user ${String(member.user_id)}, who is not in users.jsonl — the export is incomplete or was edited`);
    }
  }
  return { manifest, users, tables };
}

/**
 * Every `files` row of the archive must come with its object, whose bytes have the row's
 * size and SHA-256 (hashed here: the manifest's own checksum is the file's word, not proof),
 * or the imported tenant would list files that cannot be downloaded, or whose bytes are not
 * the ones recorded.
 */
async function checkFilesHaveTheirObjects(work: string, manifest: Manifest, files: ArchivedRow[]): Promise<void> {
  const objects = new Map(manifest.objects.map((object) => [object.key, object]));
  for (const row of files) {
    const key = fileKey(row);
    const object = objects.get(key);
    if (!object) throw new CliError(`files names ${key}, whose object the export lacks — the export is incomplete or was edited`);
    const file = await archivedFile(work, object.file);
    const [size, sha256] = await Promise.all([stat(file).then((stats) => stats.size), fileSha256(file)]);
    if (size !== Number(row.size) || sha256 !== row.sha256) {
      throw new CliError(
        `the object of ${key} in the export is not the file its row records (${size} bytes, sha256 ${sha256}; the row says ${String(row.size)} bytes, ${String(row.sha256)}) — the export is damaged or was edited`,
      );
    }
  }
}

/**
 * What the plan must hold before anything is written, so the operator hears the first thing
 * that does not fit (seats, then custom domains) and the flag that fixes it, rather than the
 * database's refusal of whichever row happens to come first.
 */
async function checkArchiveFitsPlan(
  client: Queryable,
  planId: string,
  needs: { seats: number; seatLimitOverride: unknown; domains: number },
): Promise<void> {
  const { rows } = await client.query<{ max_users: number | null; custom_domains: boolean }>(
    `SELECT max_users, coalesce(features -> 'custom_domains' = 'true'::jsonb, false) AS custom_domains FROM plans WHERE id = $1`,
    [planId],
  );
  const plan = rows[0]!;
  const seatLimit = typeof needs.seatLimitOverride === 'number' ? needs.seatLimitOverride : plan.max_users;
  if (seatLimit !== null && needs.seats > seatLimit) {
    throw new CliError(
      `the owner and ${needs.seats - 1} invitation(s) do not fit plan '${planId}' (${seatLimit} users) — choose a plan with more users with --plan`,
    );
  }
  if (needs.domains > 0 && !plan.custom_domains) {
    throw new CliError(
      `the archive has ${needs.domains} custom domain(s) and plan '${planId}' does not include custom domains — choose a plan that does with --plan`,
    );
  }
}

/**
 * Creates a new tenant from an export, in one transaction, trusting nothing the file says
 * about who may do what: the plan is --plan (free by default), per-tenant limits are the
 * plan's unless --keep-limits, domains start unverified, API keys and subscriptions stay
 * behind, the only member is the --owner, and every archived member is invited instead
 * (a new token each, printed once), whether an account with that email exists or not.
 */
export async function importTenant(file: string, options: ImportOptions): Promise<ImportResult> {
  const archiveStats = await stat(file).catch(() => undefined);
  if (!archiveStats?.isFile()) {
    throw new CliError(`cannot read ${file} — give the path of a file written by \`tenantry tenant export\``);
  }
  const planId = options.plan ?? DEFAULT_PLAN;
  let slug = options.slug;
  try {
    await checkPlan(planId);
    await checkOwner(options.owner);
    // A bad STORAGE_LAYOUT or a missing S3_ENDPOINT refuses before anything is unpacked.
    await namespaceStores();
  } catch (error) {
    throw explainDatabaseError(error, { slug, plan: planId, user: options.owner });
  }

  const bar = progress();
  const work = await mkdtemp(path.join(os.tmpdir(), 'tenantry-import-'));
  let namespacesMade: string | undefined;
  let failure: unknown;
  try {
    await unpackArchive(file, work);
    const archive = await readArchive(work, file);
    const { manifest } = archive;
    slug ??= manifest.source.slug;
    const newSlug = slug;

    const result = await inTransaction(
      async (client) => {
        const existing = await client.query(`SELECT 1 FROM tenants WHERE slug = $1`, [newSlug]);
        if (existing.rowCount) throw new CliError(`slug '${newSlug}' is already taken — choose another with --slug`);
        const owner = await checkOwner(options.owner, client);

        const tables = await insertionOrder(client, await listTenantTables(client));
        const unknown = manifest.tables.filter((entry) => !tables.some((table) => table.table === entry.name));
        if (unknown.length > 0) {
          throw new CliError(
            `this database has no tenant table ${unknown.map((entry) => entry.name).join(', ')} — run \`tenantry db migrate\` and retry, or use a file written by \`tenantry tenant export\``,
          );
        }

        const ids = new Map<string, string>();
        const newTenantId = randomUUID();
        ids.set(manifest.source.tenant_id.toLowerCase(), newTenantId);

        // Archived users are matched by email for attribution only (created_by …); one
        // without an account here is attributed to nobody. No account is created or joined.
        const archivedUsers = new Map<string, { email: string; existing: string | undefined }>();
        for (const user of archive.users) {
          // users.jsonl addresses are normalised on reading, as the unique index compares them.
          const found = await client.query<{ id: string }>(`SELECT id FROM users WHERE lower(email COLLATE "und-x-icu") = $1`, [user.email]);
          const existing = found.rows[0]?.id;
          archivedUsers.set(String(user.id).toLowerCase(), { email: String(user.email), existing });
          if (existing) ids.set(String(user.id).toLowerCase(), existing);
        }
        const unmatchedUsers = new Set([...archivedUsers].filter(([, user]) => !user.existing).map(([id]) => id));
        const userColumns = await userReferences(client, 'public');
        const forgetUnmatchedUsers = (table: string, row: Row) => {
          for (const column of userColumns.get(table) ?? []) {
            if (typeof row[column] === 'string' && unmatchedUsers.has((row[column] as string).toLowerCase())) row[column] = null;
          }
        };

        // New ids for every uuid primary key of a row that comes in.
        for (const table of tables) {
          const rows = archive.tables.get(table.table);
          if (!rows || isNotImported(table.table) || table.table === 'tenant_members') continue;
          const key = await uuidPrimaryKey(client, table);
          if (!key) continue;
          for (const row of rows) {
            const old = typeof row[key] === 'string' ? (row[key] as string).toLowerCase() : undefined;
            if (old && !ids.has(old)) ids.set(old, randomUUID());
          }
        }

        const archivedTenant = archive.tables.get('tenants')![0]!;
        const archivedLimits = TENANT_LIMIT_COLUMNS.some((column) => archivedTenant[column] !== undefined && archivedTenant[column] !== null);
        const now = Date.now();
        const isLivePending = (row: ArchivedRow) =>
          row.status === 'pending' && (typeof row.expires_at !== 'string' || Date.parse(row.expires_at) > now);

        /** What an archived row of `table` becomes here, or null when it does not come in. */
        const admit = (table: TenantTable, archived: ArchivedRow): Row | null => {
          switch (table.table) {
            case 'tenants':
              return {
                ...pick(archived, TENANT_COLUMNS_TAKEN),
                ...(options.keepLimits ? pick(archived, TENANT_LIMIT_COLUMNS) : {}),
                id: newTenantId,
                slug: newSlug,
                plan_id: planId,
                owner_user_id: owner.id,
              };
            case 'tenant_domains':
              return {
                ...(remap(pick(archived, DOMAIN_COLUMNS_TAKEN), ids) as Row),
                is_primary: false,
                verified_at: null,
                verification_token: randomBytes(16).toString('hex'),
              };
            case 'tenant_invitations': {
              // Live invitations are issued again below, with tokens of their own.
              if (isLivePending(archived)) return null;
              const row = remap(pick(archived, INVITATION_COLUMNS_TAKEN), ids) as Row;
              return { ...row, status: row.status === 'pending' ? 'expired' : row.status, token_hash: hashToken(newOpaqueToken()) };
            }
            case 'tenant_members':
              return null;
            case 'file_uploads': {
              // A pending upload's reservation and presigned policy belong to the source: here it is history.
              const row = remap(archived, ids) as Row;
              return row.status === 'pending' ? { ...row, status: 'expired' } : row;
            }
            case 'audit_log': {
              // History from elsewhere, unverifiable: kept, but never mistaken for this database's own entries.
              const row = remap(archived, ids) as Row;
              return { ...row, actor: `archive:${typeof row.actor === 'string' ? row.actor : 'unknown'}` };
            }
            default:
              return isNotImported(table.table) ? null : (remap(archived, ids) as Row);
          }
        };

        // Archived members and live invitations become invitations with the archived role.
        const invitees = new Map<string, { email: string; role: Role }>();
        for (const member of archive.tables.get('tenant_members') ?? []) {
          const user = archivedUsers.get(String(member.user_id).toLowerCase())!;
          invitees.set(user.email, { email: user.email, role: member.role as Role });
        }
        for (const invitation of archive.tables.get('tenant_invitations') ?? []) {
          const address = String(invitation.email);
          if (isLivePending(invitation) && !invitees.has(address)) invitees.set(address, { email: address, role: invitation.role as Role });
        }
        invitees.delete(owner.email);

        bar.start(tables.length, `importing ${newSlug}: tables`);
        const counts: Record<string, number> = {};
        for (const table of tables) {
          const rows: Row[] = [];
          for (const archived of archive.tables.get(table.table) ?? []) {
            const row = admit(table, archived);
            if (!row) continue;
            forgetUnmatchedUsers(table.table, row);
            // Every row belongs to the new tenant, whatever the file says.
            row[table.tenantColumn] = newTenantId;
            rows.push(row);
          }
          try {
            await insertRows(client, table, rows);
          } catch (error) {
            if (isPgError(error) && error.constraint === 'files_storage_limit') {
              throw new CliError(
                `the export's files do not fit plan '${planId}''s storage limit (${error.message}) — choose a plan with more storage with --plan${options.keepLimits ? '' : ', or take the archive\'s own limit with --keep-limits'}`,
              );
            }
            if (isPgError(error) && error.code === '23505') {
              throw new CliError(
                `${table.table} rows clash with data already here (${error.constraint ?? error.detail}) — is the source tenant still in this database? Purge it first or edit the export`,
              );
            }
            // The tenants row is the operator's (slug, plan, owner): its errors are explained as theirs, below.
            if (isPgError(error) && /^(22|23)/.test(error.code ?? '') && table.table !== 'tenants') {
              throw new CliError(
                `${table.table} rows of the export are not valid here: ${error.message}${error.constraint ? ` (${error.constraint})` : ''} — use a file written by \`tenantry tenant export\``,
              );
            }
            throw error;
          }
          if (table.table === 'tenants') {
            // After the tenants row, whose own refusals (slug) are the operator's first.
            await checkArchiveFitsPlan(client, planId, {
              seats: 1 + invitees.size,
              seatLimitOverride: options.keepLimits ? archivedTenant.max_users : undefined,
              domains: archive.tables.get('tenant_domains')?.length ?? 0,
            });
            await client.query(`INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'owner')`, [newTenantId, owner.id]);
          }
          if (archive.tables.has(table.table)) counts[table.table] = rows.length;
          bar.increment();
        }

        const invitations: ImportedInvitation[] = [];
        for (const invitee of invitees.values()) {
          const token = newOpaqueToken();
          await client
            .query(`INSERT INTO tenant_invitations (tenant_id, email, role, token_hash, invited_by) VALUES ($1, $2, $3, $4, NULL)`, [
              newTenantId,
              invitee.email,
              invitee.role,
              hashToken(token),
            ])
            .catch((error: unknown) => {
              // Pending invitations take seats: an invitation past the limit could only fail.
              if (isPgError(error) && refusingConstraint(error) === 'tenant_members_user_limit') {
                throw new CliError(
                  `the owner and ${invitees.size} invitation(s) do not fit plan '${planId}' (${/limit of (\d+)/.exec(error.message)?.[1] ?? 'its'} users) — choose a plan with more users with --plan`,
                );
              }
              throw error;
            });
          invitations.push({ ...invitee, token, link: invitationLink(options.publicUrl, token) });
        }

        // The new tenant's namespaces, then its objects, last: a failure rolls the rows back
        // and the finally below removes what was made.
        namespacesMade = newTenantId;
        const stores = await namespaceStores();
        const { provisionTenantNamespaces } = await namespaceKit();
        await provisionTenantNamespaces(stores, newTenantId, { enabled: true });
        const objects = await importObjects(work, archive, stores, newTenantId, (total) => bar.start(total, `importing ${newSlug}: objects`), () => bar.increment());
        const result: ImportResult = {
          tenant_id: newTenantId,
          slug: newSlug,
          source: manifest.source,
          plan_id: planId,
          owner: { user_id: owner.id, email: owner.email },
          limits_from_archive: Boolean(options.keepLimits) && archivedLimits,
          archived_limits_ignored: !options.keepLimits && archivedLimits,
          rows: counts,
          domains_unverified: (archive.tables.get('tenant_domains') ?? []).map((row) => String(row.domain)),
          invitations,
          not_imported: {
            api_keys: archive.tables.get('api_keys')?.length ?? 0,
            tenant_subscriptions: archive.tables.get('tenant_subscriptions')?.length ?? 0,
          },
          objects,
        };
        return result;
      },
      { reason: `tenant import of ${manifest.source.slug} (${manifest.source.tenant_id})` },
    );
    namespacesMade = undefined;
    return result;
  } catch (error) {
    failure = error;
    throw explainDatabaseError(error, { slug, tenant: slug, plan: planId });
  } finally {
    bar.stop();
    if (namespacesMade) await removeNamespacesQuietly(namespacesMade, failure);
    await removeWorkDirectory(work);
  }
}

/**
 * Puts the archive's objects under the new tenant's location, whatever layout the source
 * had: keys are relative to it. A file keeps its content type. The object of an upload that
 * was pending at export (and so is expired here) stays behind.
 */
async function importObjects(
  work: string,
  archive: ValidatedArchive,
  stores: NamespaceStores,
  tenantId: string,
  start: (total: number) => void,
  step: () => void,
): Promise<number> {
  const { tenantStorageLocation } = await import('../../shared/src/storage/location.js');
  const location = tenantStorageLocation(tenantId, stores.settings);
  const files = new Map((archive.tables.get('files') ?? []).map((row) => [fileKey(row), row]));
  const abandoned = new Set(
    (archive.tables.get('file_uploads') ?? []).filter((row) => row.status === 'pending').map(fileKey).filter((key) => !files.has(key)),
  );
  const objects = archive.manifest.objects.filter((object) => !abandoned.has(object.key));
  start(objects.length);
  for (const object of objects) {
    const contentType = files.get(object.key)?.content_type;
    await stores.s3.fPutObject(
      location.bucket,
      `${location.prefix}${object.key}`,
      await archivedFile(work, object.file),
      typeof contentType === 'string' ? { 'Content-Type': contentType } : {},
    );
    step();
  }
  return objects.length;
}
