import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type pg from 'pg';
import { listTenantTables, type TenantTable } from '../../shared/src/db/isolation-lint.js';
import { adminPool, bucketOf, inTransaction, s3Client } from './context.js';
import { CliError, explainDatabaseError, isPgError } from './errors.js';
import { progress } from './progress.js';
import { findTenant } from './tenants.js';

export const EXPORT_FORMAT = 'tenantry-tenant-export';
export const EXPORT_FORMAT_VERSION = 1;

export interface Manifest {
  format: typeof EXPORT_FORMAT;
  format_version: number;
  created_at: string;
  source: { tenant_id: string; slug: string; name: string };
  tables: Array<{ name: string; file: string; rows: number }>;
  users: { file: string; rows: number };
  objects: Array<{ key: string; file: string; size: number }>;
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;
const qualified = (table: { schema: string; table: string }) => `${quoteIdent(table.schema)}.${quoteIdent(table.table)}`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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

async function readJsonLines(file: string): Promise<Row[]> {
  const rows: Row[] = [];
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) if (line.trim()) rows.push(JSON.parse(line) as Row);
  return rows;
}

export interface ExportResult {
  file: string;
  manifest: Manifest;
}

/** Writes a tenant's rows, member users (without password hashes) and objects to a .tar.gz. */
export async function exportTenant(tenantRef: string, output: string): Promise<ExportResult> {
  const bar = progress();
  const work = await mkdtemp(path.join(os.tmpdir(), 'tenantry-export-'));
  try {
    await mkdir(path.join(work, 'tables'));
    const client = await adminPool().connect();
    let manifest: Manifest;
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

    const s3 = await s3Client();
    const bucket = bucketOf(manifest.source.tenant_id);
    if (await s3.bucketExists(bucket)) {
      await mkdir(path.join(work, 'objects'));
      const names: Array<{ name: string; size: number }> = [];
      for await (const item of s3.listObjectsV2(bucket, '', true)) if (item.name) names.push({ name: item.name, size: item.size });
      bar.start(names.length, `exporting ${manifest.source.slug}: objects`);
      for (const [index, item] of names.entries()) {
        const file = `objects/${String(index + 1).padStart(6, '0')}`;
        await s3.fGetObject(bucket, item.name, path.join(work, file));
        manifest.objects.push({ key: item.name, file, size: item.size });
        bar.increment();
      }
    }
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

/** A path named by the manifest, refused when it would leave the unpacked archive. */
function within(root: string, relative: string): string {
  const resolved = path.resolve(root, String(relative));
  if (!resolved.startsWith(`${root}${path.sep}`)) {
    throw new CliError(`the export names a file outside itself (${relative}) — use a file written by \`tenantry tenant export\``);
  }
  return resolved;
}

/** Replaces every string equal to a remapped uuid, however deep (ids in jsonb and text too). */
function remap(value: unknown, ids: Map<string, string>): unknown {
  if (typeof value === 'string') return UUID.test(value) ? (ids.get(value.toLowerCase()) ?? value) : value;
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

export interface ImportResult {
  tenant_id: string;
  slug: string;
  source: Manifest['source'];
  rows: Record<string, number>;
  users_created: number;
  users_matched: number;
  objects: number;
}

/** Creates a new tenant from an export: new ids everywhere, users matched by email, one transaction. */
export async function importTenant(file: string, options: { slug?: string }): Promise<ImportResult> {
  await stat(file).catch(() => {
    throw new CliError(`cannot read ${file} — give the path of a file written by \`tenantry tenant export\``);
  });
  const bar = progress();
  const work = await mkdtemp(path.join(os.tmpdir(), 'tenantry-import-'));
  let bucketCreated: string | undefined;
  let slug = options.slug;
  try {
    try {
      const tar = await import('tar');
      await tar.x({ file, cwd: work, strict: true });
    } catch (error) {
      throw new CliError(`${file} is not a tenant export (${(error as Error).message}) — give a file written by \`tenantry tenant export\``);
    }
    const manifest = JSON.parse(await readFile(path.join(work, 'manifest.json'), 'utf8').catch(() => '{}')) as Manifest;
    if (manifest.format !== EXPORT_FORMAT || manifest.format_version !== EXPORT_FORMAT_VERSION) {
      throw new CliError(`${file} is not a version ${EXPORT_FORMAT_VERSION} tenant export — give a file written by \`tenantry tenant export\``);
    }
    slug ??= manifest.source.slug;
    const newSlug = slug;

    const result = await inTransaction(
      async (client) => {
        const existing = await client.query(`SELECT 1 FROM tenants WHERE slug = $1`, [newSlug]);
        if (existing.rowCount) throw new CliError(`slug '${newSlug}' is already taken — choose another with --slug`);

        const ids = new Map<string, string>();
        const newTenantId = randomUUID();
        ids.set(manifest.source.tenant_id.toLowerCase(), newTenantId);

        // Users: matched by email, else created (no password: they reset it).
        const users = await readJsonLines(within(work, manifest.users.file));
        let created = 0;
        for (const user of users) {
          const found = await client.query<{ id: string }>(`SELECT id FROM users WHERE lower(email) = lower($1)`, [user.email]);
          if (found.rows[0]) {
            ids.set(String(user.id).toLowerCase(), found.rows[0].id);
            continue;
          }
          const id = randomUUID();
          ids.set(String(user.id).toLowerCase(), id);
          // A file must not mint platform staff; passwords are never exported.
          await insertRows(client, { schema: 'public', table: 'users' }, [{ ...user, id, password_hash: null, is_staff: false }]);
          await client.query(
            `INSERT INTO audit_log (tenant_id, action, target_type, target_id, after, reason)
             VALUES (NULL, 'users.insert', 'users', $1, jsonb_build_object('email', $2::text), current_setting('tenantry.reason', true))`,
            [id, user.email],
          );
          created += 1;
        }

        const tables = await insertionOrder(client, await listTenantTables(client));
        const known = new Map(manifest.tables.map((entry) => [entry.name, entry]));
        const unknown = manifest.tables.filter((entry) => !tables.some((table) => table.table === entry.name));
        if (unknown.length > 0) {
          throw new CliError(
            `this database has no table ${unknown.map((entry) => entry.name).join(', ')} — run \`tenantry db migrate\` and retry`,
          );
        }
        // First pass: new ids for every uuid primary key of an exported row.
        const data = new Map<string, Row[]>();
        for (const table of tables) {
          const entry = known.get(table.table);
          if (!entry) continue;
          const rows = await readJsonLines(within(work, entry.file));
          const key = await uuidPrimaryKey(client, table);
          if (key) {
            for (const row of rows) {
              const old = typeof row[key] === 'string' ? (row[key] as string).toLowerCase() : undefined;
              if (old && !ids.has(old)) ids.set(old, randomUUID());
            }
          }
          data.set(table.table, rows);
        }
        bar.start(tables.length, `importing ${newSlug}: tables`);
        const counts: Record<string, number> = {};
        for (const table of tables) {
          const rows = (data.get(table.table) ?? []).map((row) => remap(row, ids) as Row);
          // Every row belongs to the new tenant, whatever the file says.
          for (const row of rows) row[table.tenantColumn] = newTenantId;
          if (table.table === 'tenants') for (const row of rows) row.slug = newSlug;
          try {
            await insertRows(client, table, rows);
          } catch (error) {
            if (isPgError(error) && error.code === '23505') {
              throw new CliError(
                `${table.table} rows clash with data already here (${error.constraint ?? error.detail}) — is the source tenant still in this database? Purge it first or edit the export`,
              );
            }
            throw error;
          }
          counts[table.table] = rows.length;
          bar.increment();
        }

        // Objects last, so a failed upload rolls the rows back with it.
        let objects = 0;
        if (manifest.objects.length > 0) {
          const s3 = await s3Client();
          const bucket = bucketOf(newTenantId);
          await s3.makeBucket(bucket);
          bucketCreated = bucket;
          bar.start(manifest.objects.length, `importing ${newSlug}: objects`);
          for (const object of manifest.objects) {
            await s3.fPutObject(bucket, object.key, within(work, object.file));
            objects += 1;
            bar.increment();
          }
        }
        return {
          tenant_id: newTenantId,
          slug: newSlug,
          source: manifest.source,
          rows: counts,
          users_created: created,
          users_matched: users.length - created,
          objects,
        };
      },
      { reason: `tenant import of ${manifest.source.slug} (${manifest.source.tenant_id})` },
    );
    bucketCreated = undefined;
    return result;
  } catch (error) {
    throw explainDatabaseError(error, { slug, tenant: slug });
  } finally {
    bar.stop();
    if (bucketCreated) await removeBucket(bucketCreated).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}

async function removeBucket(bucket: string): Promise<void> {
  const s3 = await s3Client();
  const names: string[] = [];
  for await (const item of s3.listObjectsV2(bucket, '', true)) if (item.name) names.push(item.name);
  if (names.length > 0) await s3.removeObjects(bucket, names);
  await s3.removeBucket(bucket);
}
