import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { Client as S3Client } from 'minio';
import type pg from 'pg';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listTenantTables } from '../../services/shared/src/db/isolation-lint.js';
import { isUuid } from '../../services/shared/src/ids.js';
import { SEEDED_TABLES, hex, seedTenant, uniqueSlug, type SeededTenant } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';
import { aclUser } from '../storage/lifecycle-helpers.js';
import { cli, cliEnv, handMadeTarball, objectNames, privateTempDir, redisClient, s3Client, type TarEntrySpec } from './helpers.js';

let admin: pg.Pool;
let s3: S3Client;
let redis: Redis;
let work: string;
beforeAll(async () => {
  admin = poolAs('platform_admin');
  s3 = s3Client();
  redis = redisClient();
  work = await mkdtemp(path.join(os.tmpdir(), 'tenantry-cli-transfer-'));
});
afterAll(async () => {
  await admin.end();
  redis.disconnect();
  await rm(work, { recursive: true, force: true });
});

const IMPORT_REASON = /^tenant import of /;

/**
 * A tenant's rows in every tenant table, comparable across ids: the tenant id becomes
 * <tenant>, user ids become user:<email>, every other uuid <id>; what the database sets
 * on insert (status_changed_at, audit ids) and the import's own audit entries are left out.
 */
async function comparable(tenantId: string): Promise<Record<string, string[]>> {
  const client = await admin.connect();
  try {
    const tables = await listTenantTables(client);
    const { rows: users } = await client.query<{ id: string; email: string }>(`SELECT id, email FROM users`);
    const labels = new Map(users.map((user) => [user.id, `user:${user.email}`]));
    labels.set(tenantId, '<tenant>');
    const label = (value: unknown): unknown => {
      if (typeof value === 'string') return isUuid(value) ? (labels.get(value) ?? '<id>') : value;
      if (Array.isArray(value)) return value.map(label);
      if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, label(item)]));
      return value;
    };
    const result: Record<string, string[]> = {};
    for (const table of tables) {
      const { rows } = await client.query<{ row: Record<string, unknown> }>(
        `SELECT to_jsonb(x) AS row FROM "${table.table}" x WHERE "${table.tenantColumn}" = $1`,
        [tenantId],
      );
      result[table.table] = rows
        .filter((row) => !(table.table === 'audit_log' && IMPORT_REASON.test(String(row.row.reason))))
        .map(({ row }) => {
          const copy: Record<string, unknown> = { ...row };
          if (table.table === 'tenants') {
            delete copy.slug;
            delete copy.status_changed_at;
          }
          if (table.table === 'audit_log') delete copy.id;
          return JSON.stringify(label(copy));
        })
        .sort();
    }
    return result;
  } finally {
    client.release();
  }
}


const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');

/** The seeded file's object where the bucket layout keeps it: a tenant's export carries every file's bytes. */
async function putSeededFile(source: SeededTenant): Promise<string> {
  const bucket = `tenant-${source.tenantId}`;
  if (!(await s3.bucketExists(bucket))) await s3.makeBucket(bucket);
  await s3.putObject(bucket, `${source.file.bucket}/${source.file.name}`, source.file.content);
  return bucket;
}

async function objectBytes(bucket: string, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await s3.getObject(bucket, key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** An existing account, verified or not, to name as --owner or to match by email. */
async function createUser(label: string, verified = true): Promise<{ id: string; email: string }> {
  const email = `${label}-${hex(5)}@example.test`;
  const { rows } = await admin.query<{ id: string }>(
    `INSERT INTO users (email, display_name, email_verified_at) VALUES ($1, $2, CASE WHEN $3 THEN now() END) RETURNING id`,
    [email, label, verified],
  );
  return { id: rows[0]!.id, email };
}

const jsonLines = (rows: unknown[]) => rows.map((row) => `${JSON.stringify(row)}\n`).join('');

/** The entries of a small, valid archive written by hand: one tenant row, one project, no users. */
function smallArchive(name: string, tenant: Record<string, unknown> = {}): { entries: TarEntrySpec[]; manifest: Record<string, unknown> } {
  const sourceId = '00000000-0000-4000-8000-00000000a11e';
  const tables = {
    tenants: [{ id: sourceId, slug: 'small-src', name, ...tenant }],
    projects: [{ id: '00000000-0000-4000-8000-0000000000b1', tenant_id: sourceId, name: 'Kept' }],
  };
  const manifest = {
    format: 'tenantry-tenant-export',
    format_version: 1,
    created_at: new Date().toISOString(),
    source: { tenant_id: sourceId, slug: 'small-src', name },
    tables: Object.entries(tables).map(([table, rows]) => ({ name: table, file: `tables/${table}.jsonl`, rows: rows.length })),
    users: { file: 'users.jsonl', rows: 0 },
    objects: [],
  };
  return {
    manifest,
    entries: [
      { path: 'manifest.json', body: JSON.stringify(manifest) },
      { path: 'users.jsonl', body: '' },
      { path: 'tables/', type: 'Directory' },
      ...Object.entries(tables).map(([table, rows]) => ({ path: `tables/${table}.jsonl`, body: jsonLines(rows) })),
    ],
  };
}

async function writeArchive(name: string, entries: TarEntrySpec[]): Promise<string> {
  const file = path.join(work, `${name}-${hex(4)}.tar.gz`);
  await writeFile(file, await handMadeTarball(entries));
  return file;
}

/** Invitation lines of the human output: `  email  role  token-or-link`. */
function printedInvitations(stdout: string): Map<string, { role: string; token: string }> {
  const found = new Map<string, { role: string; token: string }>();
  for (const match of stdout.matchAll(/^ {2}(\S+@\S+) {2}(owner|admin|member|guest) {2}(\S+)$/gm)) {
    found.set(match[1]!.toLowerCase(), { role: match[2]!, token: match[3]! });
  }
  return found;
}

describe.concurrent('tenant export and import', () => {
  test('round trip: the same data under new ids; members invited, domains unverified, keys and billing left behind', async () => {
    const source = await seedTenant(admin, 'exported');
    const bucket = await putSeededFile(source);
    await s3.putObject(bucket, 'avatars/owner.png', Buffer.from('png-bytes'));
    await s3.putObject(bucket, 'docs/read me.txt', Buffer.from('hello'));
    const before = await comparable(source.tenantId);
    expect(before.projects).toHaveLength(3);
    expect(before.tenant_members).toHaveLength(2);
    expect(before.audit_log!.length).toBeGreaterThan(5);
    for (const table of SEEDED_TABLES) expect(before[table]!.length, table).toBeGreaterThan(0);

    const file = path.join(work, `${source.slug}.tar.gz`);
    const exported = await cli(['tenant', 'export', source.slug, '--output', file, '--json']);
    expect(exported.code, exported.stderr).toBe(0);

    // The archive: a manifest, a JSON-lines file per tenant table, users without password hashes, the objects.
    const unpacked = path.join(work, 'unpacked');
    await mkdir(unpacked);
    await tar.x({ file, cwd: unpacked });
    const manifest = JSON.parse(await readFile(path.join(unpacked, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({
      format: 'tenantry-tenant-export',
      format_version: 1,
      source: { tenant_id: source.tenantId, slug: source.slug },
      users: { file: 'users.jsonl', rows: 2 },
    });
    expect(exported.json()).toMatchObject({ file, ...manifest });
    const catalog = await admin.connect();
    const tableNames = (await listTenantTables(catalog).finally(() => catalog.release())).map((table) => table.table);
    expect(manifest.tables.map((entry: { name: string }) => entry.name).sort()).toEqual([...tableNames].sort());
    for (const entry of manifest.tables as Array<{ name: string; file: string; rows: number }>) {
      const lines = (await readFile(path.join(unpacked, entry.file), 'utf8')).split('\n').filter(Boolean);
      expect(lines, entry.name).toHaveLength(entry.rows);
    }
    expect(manifest.tables.find((entry: { name: string }) => entry.name === 'projects').rows).toBe(3);
    const usersFile = await readFile(path.join(unpacked, 'users.jsonl'), 'utf8');
    expect(usersFile).toContain(source.ownerEmail);
    expect(usersFile).not.toContain('password_hash');
    expect(manifest.objects.map((object: { key: string }) => object.key).sort()).toEqual(['avatars/owner.png', 'docs/read me.txt', 'docs/reports/2026/summary.txt']);
    expect(manifest.objects.find((object: { key: string }) => object.key === 'docs/reports/2026/summary.txt').sha256).toBe(source.file.sha256);

    // The export is on the source's record.
    const { rows: exportAudit } = await admin.query(
      `SELECT actor, after FROM audit_log WHERE tenant_id = $1 AND action = 'tenants.export'`,
      [source.tenantId],
    );
    expect(exportAudit).toHaveLength(1);
    expect(exportAudit[0].actor).toMatch(/^cli:/);
    expect(exportAudit[0].after).toMatchObject({ file: path.basename(file), users: 2, objects: 3, rows: { projects: 3, files: 1 } });

    // A reserved slug and an existing slug are refused.
    const reserved = await cli(['tenant', 'import', file, '--slug', 'www', '--owner', source.ownerEmail]);
    expect(reserved.code).toBe(1);
    expect(reserved.stderr).toContain("slug 'www' is not allowed");
    const taken = await cli(['tenant', 'import', file, '--owner', source.ownerEmail]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toBe(`tenantry: slug '${source.slug}' is already taken — choose another with --slug\n`);

    // Move the tenant: purge the source, drop its member's account (they get an invitation all the same).
    expect((await cli(['tenant', 'delete', source.slug, '--purge-data', '--yes'])).code).toBe(0);
    await admin.query(`DELETE FROM users WHERE id = $1`, [source.memberUserId]);

    const slug = uniqueSlug('imported');
    const imported = await cli(['tenant', 'import', file, '--slug', slug, '--owner', source.ownerEmail, '--plan', 'pro', '--json']);
    expect(imported.code, imported.stderr).toBe(0);
    const result = imported.json<{
      tenant_id: string;
      invitations: Array<{ email: string; role: string; token: string; link: string | null }>;
    }>();
    expect(result).toMatchObject({
      slug,
      plan_id: 'pro',
      owner: { user_id: source.ownerUserId, email: source.ownerEmail },
      domains_unverified: [source.domain],
      not_imported: { api_keys: 1, tenant_subscriptions: 1 },
      objects: 3,
      source: { tenant_id: source.tenantId, slug: source.slug },
    });
    expect(result.tenant_id).not.toBe(source.tenantId);
    expect(result.invitations.map(({ email, role }) => ({ email, role })).sort((a, b) => a.email.localeCompare(b.email))).toEqual([
      { email: `invitee-${source.slug}@example.test`, role: 'member' },
      { email: source.memberEmail, role: 'member' },
    ]);

    // The data comes over as it was; what grants access does not.
    const after = await comparable(result.tenant_id);
    const reissued = new Set(['tenant_members', 'tenant_domains', 'tenant_invitations', 'api_keys', 'tenant_subscriptions']);
    // The member's account is gone: history keeps the id it had, which names nobody here. Archived
    // audit entries say where they come from.
    const asImported = (table: string, lines: string[]) =>
      lines
        .map((line) => line.replaceAll(`"user:${source.memberEmail}"`, '"<id>"'))
        .map((line) => (table === 'audit_log' ? JSON.stringify({ ...JSON.parse(line), actor: `archive:${JSON.parse(line).actor}` }) : line))
        // An upload under way at export is over here: its policy and reservation were the source's.
        .map((line) => (table === 'file_uploads' && JSON.parse(line).status === 'pending' ? JSON.stringify({ ...JSON.parse(line), status: 'expired' }) : line))
        .sort();
    for (const table of Object.keys(before).filter((name) => !reissued.has(name))) {
      expect(after[table], table).toEqual(asImported(table, before[table]!));
    }
    expect(after.api_keys).toEqual([]);
    expect(after.tenant_subscriptions).toEqual([]);
    const { rows: members } = await admin.query(`SELECT user_id, role FROM tenant_members WHERE tenant_id = $1`, [result.tenant_id]);
    expect(members).toEqual([{ user_id: source.ownerUserId, role: 'owner' }]);
    const { rows: invitations } = await admin.query<{ email: string; role: string; status: string; token_hash: string }>(
      `SELECT email, role, status, token_hash FROM tenant_invitations WHERE tenant_id = $1 ORDER BY email`,
      [result.tenant_id],
    );
    expect(invitations).toEqual(
      result.invitations
        .map((invitation) => ({ email: invitation.email, role: invitation.role, status: 'pending', token_hash: sha256(invitation.token) }))
        .sort((a, b) => a.email.localeCompare(b.email)),
    );
    // New ids: no exported primary key survives.
    const { rows: projects } = await admin.query<{ id: string }>(`SELECT id FROM projects WHERE tenant_id = $1`, [result.tenant_id]);
    expect(projects.map((row) => row.id).filter((id) => source.projectIds.includes(id))).toEqual([]);

    // The files come over: rows (compared above), bytes and checksum, content type; the bucket and Redis user were made.
    const newBucket = `tenant-${result.tenant_id}`;
    expect(await objectNames(s3, newBucket)).toEqual(['avatars/owner.png', 'docs/read me.txt', 'docs/reports/2026/summary.txt']);
    expect((await objectBytes(newBucket, 'docs/read me.txt')).toString()).toBe('hello');
    const copied = await objectBytes(newBucket, 'docs/reports/2026/summary.txt');
    expect(copied.equals(source.file.content)).toBe(true);
    const { rows: files } = await admin.query(`SELECT bucket, name, size::int AS size, sha256, content_type FROM files WHERE tenant_id = $1`, [result.tenant_id]);
    expect(files).toEqual([{ bucket: 'docs', name: source.file.name, size: copied.length, sha256: sha256(copied), content_type: source.file.contentType }]);
    expect((await s3.statObject(newBucket, 'docs/reports/2026/summary.txt')).metaData['content-type']).toBe(source.file.contentType);
    expect(await aclUser(redis, result.tenant_id)).toEqual({ on: true, hasPassword: false });

    const show = await cli(['tenant', 'show', slug, '--json']);
    expect(show.json()).toMatchObject({ slug, member_count: 1, plan_id: 'pro', domains: [{ domain: source.domain, verified: false, is_primary: false }] });

    const cleanup = await cli(['tenant', 'delete', slug, '--purge-data', '--yes']);
    expect(cleanup.code, cleanup.stderr).toBe(0);
  }, 240_000);

  test('import --slug copy next to its source: a verified domain and an API key do not block the copy', async () => {
    const source = await seedTenant(admin, 'copied');
    await putSeededFile(source);
    const operator = await createUser('copy-operator');
    const file = path.join(work, `${source.slug}-copy.tar.gz`);
    const exported = await cli(['tenant', 'export', source.slug, '--output', file]);
    expect(exported.code, exported.stderr).toBe(0);

    // The source stays: its verified domain (unique while verified) and its key prefix (unique) are still taken.
    const slug = uniqueSlug('copy');
    const copied = await cli(['tenant', 'import', file, '--slug', slug, '--owner', operator.email, '--plan', 'pro', '--json']);
    expect(copied.code, copied.stderr).toBe(0);
    const result = copied.json<{ tenant_id: string; domains_unverified: string[]; not_imported: { api_keys: number } }>();
    expect(result.domains_unverified).toEqual([source.domain]);
    expect(result.not_imported.api_keys).toBe(1);

    const { rows: domains } = await admin.query<{ tenant_id: string; verified: boolean }>(
      `SELECT tenant_id, verified_at IS NOT NULL AS verified FROM tenant_domains WHERE domain = $1 ORDER BY verified DESC`,
      [source.domain],
    );
    expect(domains).toEqual([
      { tenant_id: source.tenantId, verified: true },
      { tenant_id: result.tenant_id, verified: false },
    ]);
    const { rows: keys } = await admin.query<{ tenant_id: string }>(`SELECT tenant_id FROM api_keys WHERE tenant_id = ANY($1::uuid[])`, [
      [source.tenantId, result.tenant_id],
    ]);
    expect(keys).toEqual([{ tenant_id: source.tenantId }]);

    // The human output says what was left behind.
    const again = await cli(['tenant', 'import', file, '--slug', uniqueSlug('copy-again'), '--owner', operator.email, '--plan', 'pro']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`domains, unverified until checked again: ${source.domain}`);
    expect(again.stdout).toContain('not imported: 1 API key(s): create new ones');
  }, 240_000);

  test('an import writes only its own tenant, whatever tenant ids the file names', async () => {
    const neighbour = await seedTenant(admin, 'neighbour');
    const operator = await createUser('operator');
    const before = await comparable(neighbour.tenantId);
    const forged = path.join(work, 'forged');
    await mkdir(path.join(forged, 'tables'), { recursive: true });
    const sourceId = '00000000-0000-4000-8000-00000000f00d';
    const files: Record<string, unknown[]> = {
      'tables/tenants.jsonl': [{ id: sourceId, slug: uniqueSlug('forged-src'), name: 'Forged' }],
      'tables/projects.jsonl': [{ id: '00000000-0000-4000-8000-00000000beef', tenant_id: neighbour.tenantId, name: 'Planted' }],
      'tables/tenant_settings.jsonl': [{ tenant_id: neighbour.tenantId, key: 'branding.primary_color', value: '#000000' }],
      'users.jsonl': [],
    };
    for (const [file, rows] of Object.entries(files)) await writeFile(path.join(forged, file), jsonLines(rows));
    const manifest = {
      format: 'tenantry-tenant-export',
      format_version: 1,
      created_at: new Date().toISOString(),
      source: { tenant_id: sourceId, slug: 'forged', name: 'Forged' },
      tables: Object.keys(files)
        .filter((file) => file.startsWith('tables/'))
        .map((file) => ({ name: path.basename(file, '.jsonl'), file, rows: 1 })),
      users: { file: 'users.jsonl', rows: 0 },
      objects: [],
    };
    await writeFile(path.join(forged, 'manifest.json'), JSON.stringify(manifest));
    const file = path.join(work, 'forged.tar.gz');
    await tar.c({ gzip: true, file, cwd: forged }, ['manifest.json', 'users.jsonl', 'tables']);

    const slug = uniqueSlug('forged');
    const imported = await cli(['tenant', 'import', file, '--slug', slug, '--owner', operator.email, '--json']);
    expect(imported.code, imported.stderr).toBe(0);
    const tenantId = imported.json<{ tenant_id: string }>().tenant_id;
    // Columns the file lacks take their defaults.
    const { rows } = await admin.query(`SELECT status, plan_id FROM tenants WHERE id = $1`, [tenantId]);
    expect(rows).toEqual([{ status: 'active', plan_id: 'free' }]);
    const planted = await admin.query(`SELECT tenant_id FROM projects WHERE name = 'Planted' AND tenant_id = ANY($1::uuid[])`, [
      [tenantId, neighbour.tenantId],
    ]);
    expect(planted.rows).toEqual([{ tenant_id: tenantId }]);
    expect(await comparable(neighbour.tenantId)).toEqual(before);

    // A manifest naming files outside the archive is refused.
    await writeFile(path.join(forged, 'manifest.json'), JSON.stringify({ ...manifest, users: { file: '../../../etc/passwd', rows: 1 } }));
    const escaping = path.join(work, 'escaping.tar.gz');
    await tar.c({ gzip: true, file: escaping, cwd: forged }, ['manifest.json', 'users.jsonl', 'tables']);
    const refused = await cli(['tenant', 'import', escaping, '--slug', uniqueSlug('escaping'), '--owner', operator.email]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('the export names a file outside itself (../../../etc/passwd)');
  }, 120_000);

  test('import refuses a file that is not an export', async () => {
    const operator = await createUser('operator');
    const bogus = path.join(work, 'bogus.tar.gz');
    await writeFile(bogus, 'not a tarball');
    const [garbage, missing] = await Promise.all([
      cli(['tenant', 'import', bogus, '--slug', uniqueSlug('bogus'), '--owner', operator.email]),
      cli(['tenant', 'import', path.join(work, 'missing.tar.gz'), '--owner', operator.email]),
    ]);
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toMatch(/is not a (version 1 )?tenant export/);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('cannot read');
  }, 120_000);
});

describe.concurrent('files across layouts', () => {
  test('bucket layout → prefix layout → bucket layout: files rows, bytes and checksums equal under each new tenant id', async () => {
    const source = await seedTenant(admin, 'layouts');
    const operator = await createUser('layout-operator');
    await putSeededFile(source);
    const photo = Buffer.from(hex(3000), 'hex');
    const sourceBucket = `tenant-${source.tenantId}`;
    await s3.putObject(sourceBucket, 'media/photo.bin', photo);
    // A second file, recorded as the storage service records one.
    await admin.query(
      `INSERT INTO files (tenant_id, bucket, name, size, content_type, sha256) VALUES ($1, 'media', 'photo.bin', $2, 'application/octet-stream', $3)`,
      [source.tenantId, photo.length, sha256(photo)],
    );
    const filesOf = async (tenantId: string) =>
      (
        await admin.query(`SELECT bucket, name, size::int AS size, content_type, sha256 FROM files WHERE tenant_id = $1 ORDER BY bucket, name`, [tenantId])
      ).rows;
    const expectedFiles = await filesOf(source.tenantId);
    expect(expectedFiles).toHaveLength(2);

    const sharedBucket = `layouts-${hex(4)}`;
    const prefixEnv = cliEnv({ STORAGE_LAYOUT: 'prefix', STORAGE_SHARED_BUCKET: sharedBucket });
    const first = path.join(work, `${source.slug}-bucket.tar.gz`);
    expect((await cli(['tenant', 'export', source.slug, '--output', first])).code).toBe(0);

    const inPrefix = await cli(['tenant', 'import', first, '--slug', uniqueSlug('in-prefix'), '--owner', operator.email, '--plan', 'pro', '--json'], {
      env: prefixEnv,
    });
    expect(inPrefix.code, inPrefix.stderr).toBe(0);
    const prefixTenant = inPrefix.json<{ tenant_id: string; slug: string; objects: number }>();
    expect(prefixTenant.objects).toBe(2);
    expect(await filesOf(prefixTenant.tenant_id)).toEqual(expectedFiles);
    expect(await s3.bucketExists(`tenant-${prefixTenant.tenant_id}`)).toBe(false);
    expect(await objectNames(s3, sharedBucket)).toEqual([`${prefixTenant.tenant_id}/docs/reports/2026/summary.txt`, `${prefixTenant.tenant_id}/media/photo.bin`]);
    expect(sha256(await objectBytes(sharedBucket, `${prefixTenant.tenant_id}/media/photo.bin`))).toBe(sha256(photo));
    expect(await aclUser(redis, prefixTenant.tenant_id)).toMatchObject({ on: true });

    // And back: an export in the prefix layout carries keys relative to the prefix.
    const second = path.join(work, `${source.slug}-prefix.tar.gz`);
    const exported = await cli(['tenant', 'export', prefixTenant.slug, '--output', second, '--json'], { env: prefixEnv });
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.json<{ objects: Array<{ key: string }> }>().objects.map((object) => object.key).sort()).toEqual(['docs/reports/2026/summary.txt', 'media/photo.bin']);
    const inBucket = await cli(['tenant', 'import', second, '--slug', uniqueSlug('in-bucket'), '--owner', operator.email, '--plan', 'pro', '--json']);
    expect(inBucket.code, inBucket.stderr).toBe(0);
    const bucketTenant = inBucket.json<{ tenant_id: string; slug: string }>();
    expect(await filesOf(bucketTenant.tenant_id)).toEqual(expectedFiles);
    const bucket = `tenant-${bucketTenant.tenant_id}`;
    expect(await objectNames(s3, bucket)).toEqual(['docs/reports/2026/summary.txt', 'media/photo.bin']);
    expect((await objectBytes(bucket, 'media/photo.bin')).equals(photo)).toBe(true);
    expect((await objectBytes(bucket, 'docs/reports/2026/summary.txt')).equals(source.file.content)).toBe(true);

    // Purging the prefix tenant takes its objects out of the shared bucket, and nothing else.
    expect((await cli(['tenant', 'delete', prefixTenant.slug, '--purge-data', '--yes'], { env: prefixEnv })).code).toBe(0);
    expect(await objectNames(s3, sharedBucket)).toEqual([]);
    for (const slug of [bucketTenant.slug, source.slug]) expect((await cli(['tenant', 'delete', slug, '--purge-data', '--yes'])).code).toBe(0);
  }, 240_000);

  test('an export is refused while a file has no object, and an import refuses an archive whose object is not the file its row records', async () => {
    const source = await seedTenant(admin, 'damaged');
    const operator = await createUser('damaged-operator');
    const file = path.join(work, `${source.slug}.tar.gz`);
    const refused = await cli(['tenant', 'export', source.slug, '--output', file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`have no object in tenant-${source.tenantId} (first: docs/reports/2026/summary.txt)`);

    await putSeededFile(source);
    expect((await cli(['tenant', 'export', source.slug, '--output', file])).code).toBe(0);
    const unpacked = path.join(work, `damaged-${source.slug}`);
    await mkdir(unpacked);
    await tar.x({ file, cwd: unpacked });
    const manifest = JSON.parse(await readFile(path.join(unpacked, 'manifest.json'), 'utf8')) as { objects: Array<{ key: string; file: string }> };
    const entry = manifest.objects.find((object) => object.key === 'docs/reports/2026/summary.txt')!;
    // Same size, other bytes: only the checksum can tell.
    await writeFile(path.join(unpacked, entry.file), Buffer.alloc(source.file.content.length, 0x41));
    const damaged = path.join(work, `damaged-${source.slug}.tar.gz`);
    await tar.c({ gzip: true, file: damaged, cwd: unpacked }, ['manifest.json', 'users.jsonl', 'tables', 'objects']);
    const slug = uniqueSlug('damaged-copy');
    const imported = await cli(['tenant', 'import', damaged, '--slug', slug, '--owner', operator.email, '--plan', 'pro']);
    expect(imported.code).toBe(1);
    expect(imported.stderr).toContain('the object of docs/reports/2026/summary.txt in the export is not the file its row records');
    expect((await admin.query(`SELECT 1 FROM tenants WHERE slug = $1`, [slug])).rowCount).toBe(0);
    expect((await cli(['tenant', 'delete', source.slug, '--purge-data', '--yes'])).code).toBe(0);
  }, 120_000);
});

describe.concurrent('attacks: an archive is untrusted input', () => {
  test('an edited export claiming enterprise, verified domains, a live invitation token and an existing user as owner gets none of it', async () => {
    const source = await seedTenant(admin, 'edited');
    await putSeededFile(source);
    const operator = await createUser('operator');
    const victim = await createUser('victim');
    const file = path.join(work, `${source.slug}.tar.gz`);
    expect((await cli(['tenant', 'export', source.slug, '--output', file])).code).toBe(0);

    // The author of the archive edits it.
    const edited = path.join(work, `edited-${source.slug}`);
    await mkdir(edited);
    await tar.x({ file, cwd: edited });
    const read = async (name: string) => (await readFile(path.join(edited, name), 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line));
    const write = (name: string, rows: unknown[]) => writeFile(path.join(edited, name), jsonLines(rows));
    const [tenant] = await read('tables/tenants.jsonl');
    await write('tables/tenants.jsonl', [{ ...tenant, plan_id: 'enterprise', max_users: 100000, max_api_requests_month: 1e12 }]);
    const squatted = `squatted-${hex(4)}.example.test`;
    const [domain] = await read('tables/tenant_domains.jsonl');
    await write('tables/tenant_domains.jsonl', [{ ...domain, domain: squatted, verified_at: new Date().toISOString(), verification_token: 'known' }]);
    const planted = '00000000-0000-4000-8000-0000000000aa';
    await write('users.jsonl', [...(await read('users.jsonl')), { id: planted, email: victim.email.toUpperCase(), display_name: 'Victim' }]);
    await write('tables/tenant_members.jsonl', [
      ...(await read('tables/tenant_members.jsonl')),
      { tenant_id: source.tenantId, user_id: planted, role: 'owner', permissions: ['*'] },
    ]);
    const [invitation] = await read('tables/tenant_invitations.jsonl');
    await write('tables/tenant_invitations.jsonl', [{ ...invitation, role: 'admin', token_hash: sha256('the-author-knows-this-token') }]);
    const auditRows = await read('tables/audit_log.jsonl');
    const forgedAudit = { ...auditRows[0], actor: 'cli:root', db_role: 'platform_admin', action: 'tenants.plan_changed', reason: 'approved by staff' };
    await write('tables/audit_log.jsonl', [...auditRows, forgedAudit]);
    const manifest = JSON.parse(await readFile(path.join(edited, 'manifest.json'), 'utf8'));
    manifest.users.rows += 1;
    for (const table of ['tenant_members', 'audit_log']) manifest.tables.find((entry: { name: string }) => entry.name === table).rows += 1;
    await writeFile(path.join(edited, 'manifest.json'), JSON.stringify(manifest));
    const editedFile = path.join(work, `edited-${source.slug}.tar.gz`);
    await tar.c({ gzip: true, file: editedFile, cwd: edited }, ['manifest.json', 'users.jsonl', 'tables', 'objects']);

    // The source stays: nothing the import takes clashes with it.
    const slug = uniqueSlug('edited-import');
    // Pending invitations take seats: on free (3 users) the owner and four invitations do not fit.
    const tooSmall = await cli(['tenant', 'import', editedFile, '--slug', slug, '--owner', operator.email]);
    expect(tooSmall.code).toBe(1);
    expect(tooSmall.stderr).toBe(
      "tenantry: the owner and 4 invitation(s) do not fit plan 'free' (3 users) — choose a plan with more users with --plan\n",
    );
    expect((await admin.query(`SELECT 1 FROM tenants WHERE slug = $1`, [slug])).rowCount).toBe(0);
    const imported = await cli(['tenant', 'import', editedFile, '--slug', slug, '--owner', operator.email, '--plan', 'starter']);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toContain(`on plan starter`);
    expect(imported.stdout).toContain(`owner: ${operator.email} (--owner), the only member`);
    expect(imported.stdout).toContain("limits: the plan's; the archive's per-tenant overrides were ignored");
    expect(imported.stdout).toContain(`domains, unverified until checked again: ${squatted}`);
    expect(imported.stdout).toContain('not imported: 1 API key(s): create new ones; 1 billing subscription(s)');
    expect(imported.stdout).toContain('The CLI sends no mail');

    const { rows: tenants } = await admin.query(
      `SELECT id, plan_id, max_users, max_api_requests_month, owner_user_id, status FROM tenants WHERE slug = $1`,
      [slug],
    );
    expect(tenants).toEqual([{ id: expect.any(String), plan_id: 'starter', max_users: null, max_api_requests_month: null, owner_user_id: operator.id, status: 'active' }]);
    const tenantId = tenants[0].id as string;
    const { rows: domains } = await admin.query(`SELECT domain, verified_at, is_primary, verification_token FROM tenant_domains WHERE tenant_id = $1`, [tenantId]);
    expect(domains).toEqual([{ domain: squatted, verified_at: null, is_primary: false, verification_token: expect.stringMatching(/^[0-9a-f]{32}$/) }]);

    // Only the operator's owner joined; the victim, the archived owner and member are invited, nobody added.
    const { rows: members } = await admin.query(`SELECT user_id, role FROM tenant_members WHERE tenant_id = $1`, [tenantId]);
    expect(members).toEqual([{ user_id: operator.id, role: 'owner' }]);
    const printed = printedInvitations(imported.stdout);
    const { rows: invitations } = await admin.query<{ email: string; role: string; status: string; token_hash: string }>(
      `SELECT lower(email) AS email, role, status, token_hash FROM tenant_invitations WHERE tenant_id = $1 ORDER BY 1`,
      [tenantId],
    );
    expect(invitations.map(({ email, role, status }) => ({ email, role, status }))).toEqual(
      [
        { email: victim.email, role: 'owner', status: 'pending' },
        { email: source.ownerEmail, role: 'owner', status: 'pending' },
        { email: source.memberEmail, role: 'member', status: 'pending' },
        { email: `invitee-${source.slug}@example.test`, role: 'admin', status: 'pending' },
      ].sort((a, b) => a.email.localeCompare(b.email)),
    );
    // Each invitation's token was printed once; the one the author knew opens nothing.
    for (const row of invitations) expect(row.token_hash, row.email).toBe(sha256(printed.get(row.email)!.token));
    expect(invitations.map((row) => row.token_hash)).not.toContain(sha256('the-author-knows-this-token'));
    expect((await admin.query(`SELECT 1 FROM api_keys WHERE tenant_id = $1`, [tenantId])).rowCount).toBe(0);
    expect((await admin.query(`SELECT 1 FROM tenant_subscriptions WHERE tenant_id = $1`, [tenantId])).rowCount).toBe(0);
    // An audit entry the author wrote comes in as what it is: something the archive says.
    const { rows: audit } = await admin.query(`SELECT actor FROM audit_log WHERE tenant_id = $1 AND action = 'tenants.plan_changed'`, [tenantId]);
    expect(audit).toEqual([{ actor: 'archive:cli:root' }]);
    // And the victim's account is untouched: no membership anywhere new.
    expect((await admin.query(`SELECT tenant_id FROM tenant_members WHERE user_id = $1`, [victim.id])).rows).toEqual([]);

    for (const tenantSlug of [slug, source.slug]) expect((await cli(['tenant', 'delete', tenantSlug, '--purge-data', '--yes'])).code).toBe(0);
  }, 240_000);

  test('the plan and the limits are the operator\'s (--plan, --keep-limits); an unknown plan or an unfit owner is refused before anything is written', async () => {
    const operator = await createUser('operator');
    const unverified = await createUser('unverified', false);
    const name = `Limits ${hex(4)}`;
    const file = await writeArchive('limits', smallArchive(name, { plan_id: 'enterprise', max_users: 500, max_storage_bytes: 1e12 }).entries);

    const onPro = await cli(['tenant', 'import', file, '--slug', uniqueSlug('on-pro'), '--owner', operator.email, '--plan', 'pro', '--json']);
    expect(onPro.code, onPro.stderr).toBe(0);
    expect(onPro.json()).toMatchObject({ plan_id: 'pro', archived_limits_ignored: true, limits_from_archive: false });
    const kept = await cli(['tenant', 'import', file, '--slug', uniqueSlug('kept'), '--owner', operator.id, '--plan', 'starter', '--keep-limits', '--json']);
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.json()).toMatchObject({ plan_id: 'starter', limits_from_archive: true });
    const { rows } = await admin.query(`SELECT plan_id, max_users, max_storage_bytes::float8 AS max_storage_bytes FROM tenants WHERE name = $1 ORDER BY plan_id`, [name]);
    expect(rows).toEqual([
      { plan_id: 'pro', max_users: null, max_storage_bytes: null },
      { plan_id: 'starter', max_users: 500, max_storage_bytes: 1e12 },
    ]);

    // One private TMPDIR for these runs (tsx keeps its compile cache there too: a fresh one per run is slow).
    const temp = await privateTempDir(work);
    const refusals = await Promise.all(
      [
        [['--plan', 'platinum', '--owner', operator.email], /^tenantry: plan 'platinum' does not exist — use one of (.+, )?free, (.+, )?starter, pro, enterprise/],
        [['--owner', unverified.email], new RegExp(`^tenantry: user '${unverified.email}' has not verified their email address`)],
        [['--owner', `nobody-${hex(4)}@example.test`], /^tenantry: user 'nobody-[0-9a-f]+@example.test' not found/],
      ].map(async ([args, message]) => {
        const slug = uniqueSlug('refused');
        const run = await cli(['tenant', 'import', file, '--slug', slug, ...(args as string[])], { env: temp.env });
        return { run, message: message as RegExp, slug };
      }),
    );
    for (const { run, message, slug } of refusals) {
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).toMatch(message);
      expect((await admin.query(`SELECT 1 FROM tenants WHERE slug = $1`, [slug])).rowCount).toBe(0);
    }
    expect(await temp.leftovers()).toEqual([]);
    const missingOwner = await cli(['tenant', 'import', file]);
    expect(missingOwner.code).toBe(2);
    expect(missingOwner.stderr).toContain("required option '--owner <user>' not specified");

    for (const row of await admin.query<{ slug: string }>(`SELECT slug FROM tenants WHERE name = $1`, [name]).then((result) => result.rows)) {
      expect((await cli(['tenant', 'delete', row.slug, '--purge-data', '--yes'])).code).toBe(0);
    }
  }, 240_000);

  test('hostile archives are refused naming their cause: nothing written, exit 1, no temporary directory left behind', async () => {
    const operator = await createUser('operator');
    type Case = { label: string; build: (name: string) => TarEntrySpec[]; cause: RegExp };
    const base = (name: string) => smallArchive(name);
    const replace = (entries: TarEntrySpec[], entryPath: string, replacement: TarEntrySpec | TarEntrySpec[]) =>
      entries.flatMap((entry) => (entry.path === entryPath ? replacement : [entry]));
    const withManifest = (name: string, edit: (manifest: Record<string, unknown>) => void) => {
      const archive = base(name);
      edit(archive.manifest);
      return replace(archive.entries, 'manifest.json', { path: 'manifest.json', body: JSON.stringify(archive.manifest) });
    };
    const withTenantRow = (name: string, row: unknown) =>
      replace(base(name).entries, 'tables/tenants.jsonl', { path: 'tables/tenants.jsonl', body: jsonLines([row]) });
    const filler = Array.from({ length: 150 }, (_, index) => ({ path: `objects/${String(index + 1).padStart(6, '0')}`, body: hex(20_000) }));
    const cases: Case[] = [
      { label: 'symbolic link', build: (name) => replace(base(name).entries, 'users.jsonl', { path: 'users.jsonl', type: 'SymbolicLink', linkpath: '/etc/passwd' }), cause: /entry "users.jsonl" is a symbolic link/ },
      { label: 'hard link', build: (name) => replace(base(name).entries, 'users.jsonl', { path: 'users.jsonl', type: 'Link', linkpath: 'manifest.json' }), cause: /entry "users.jsonl" is a hard link/ },
      { label: 'path traversal', build: (name) => [...base(name).entries, { path: '../escaped.jsonl', body: 'x' }], cause: /entry "..\/escaped.jsonl" climbs out of the archive/ },
      { label: 'traversal inside a name', build: (name) => [...base(name).entries, { path: 'tables/../../escaped', body: 'x' }], cause: /climbs out of the archive/ },
      { label: 'absolute path', build: (name) => [...base(name).entries, { path: '/tmp/tenantry-planted', body: 'x' }], cause: /entry "\/tmp\/tenantry-planted" is an absolute path/ },
      { label: 'a file no export has', build: (name) => [...base(name).entries, { path: 'run.sh', body: 'x' }], cause: /entry "run.sh" is not a file an export has/ },
      { label: 'device', build: (name) => [...base(name).entries, { path: 'objects/000001', type: 'CharacterDevice' }], cause: /is a CharacterDevice — an export holds regular files only/ },
      { label: 'huge entry', build: (name) => [...base(name).entries, { path: 'tables/tenant_usage.jsonl', size: 300 * 1024 * 1024 }], cause: /entry tables\/tenant_usage.jsonl is 300.0 MiB, more than the 256.0 MiB such a file may have/ },
      { label: 'entry twice', build: (name) => [...base(name).entries, { path: 'manifest.json', body: '{}' }], cause: /entry manifest.json appears twice/ },
      // tar's strict mode used to reject here while it was still writing the 150 files after it: ENOTEMPTY.
      { label: 'refused early, many files after', build: (name) => [base(name).entries[0]!, { path: '../early', body: 'x' }, ...filler], cause: /entry "..\/early" climbs out of the archive/ },
      { label: 'wrong type in a row', build: (name) => withTenantRow(name, { id: '00000000-0000-4000-8000-00000000a11e', name: 42 }), cause: /tables\/tenants.jsonl line 1: name .*expected string/ },
      { label: 'a row that is no object', build: (name) => withTenantRow(name, [name]), cause: /tables\/tenants.jsonl line 1: .*expected (object|record)/ },
      { label: 'a role that does not exist', build: (name) => {
          const archive = base(name);
          archive.manifest.users = { file: 'users.jsonl', rows: 1 };
          (archive.manifest.tables as unknown[]).push({ name: 'tenant_members', file: 'tables/tenant_members.jsonl', rows: 1 });
          const userId = '00000000-0000-4000-8000-0000000000c1';
          return [
            ...replace(archive.entries, 'manifest.json', { path: 'manifest.json', body: JSON.stringify(archive.manifest) }).filter((entry) => entry.path !== 'users.jsonl'),
            { path: 'users.jsonl', body: jsonLines([{ id: userId, email: `x-${hex(3)}@example.test` }]) },
            { path: 'tables/tenant_members.jsonl', body: jsonLines([{ user_id: userId, role: 'superuser' }]) },
          ];
        }, cause: /tables\/tenant_members.jsonl line 1: role / },
      { label: 'wrong type in the manifest', build: (name) => withManifest(name, (manifest) => ((manifest.tables as Array<{ rows: unknown }>)[0]!.rows = '1')), cause: /manifest.json: tables.0.rows .*expected number/ },
      { label: 'unknown table', build: (name) => {
          const archive = base(name);
          (archive.manifest.tables as unknown[]).push({ name: 'evil_table', file: 'tables/evil_table.jsonl', rows: 0 });
          return [...replace(archive.entries, 'manifest.json', { path: 'manifest.json', body: JSON.stringify(archive.manifest) }), { path: 'tables/evil_table.jsonl', body: '' }];
        }, cause: /this database has no tenant table evil_table/ },
      { label: 'rows the manifest does not count', build: (name) => withManifest(name, (manifest) => ((manifest.tables as Array<{ rows: number }>)[1]!.rows = 2)), cause: /tables\/projects.jsonl has 1 rows where the manifest says 2/ },
      { label: 'a value the database refuses', build: (name) => replace(base(name).entries, 'tables/projects.jsonl', { path: 'tables/projects.jsonl', body: jsonLines([{ id: 'not-a-uuid', name: 'Broken' }]) }), cause: /projects rows of the export are not valid here: invalid input syntax for type uuid/ },
    ];

    const temp = await privateTempDir(work);
    const results = [];
    // Four at a time: each run is a node process, on a small machine.
    for (let start = 0; start < cases.length; start += 4) {
      results.push(
        ...(await Promise.all(
          cases.slice(start, start + 4).map(async (attack) => {
            const name = `Hostile ${hex(5)}`;
            const file = await writeArchive('hostile', attack.build(name));
            const run = await cli(['tenant', 'import', file, '--owner', operator.email, '--slug', uniqueSlug('hostile')], { env: temp.env });
            return { attack, name, run };
          }),
        )),
      );
    }
    // Every refused run removed its unpacked archive.
    expect(await temp.leftovers()).toEqual([]);
    for (const { attack, name, run } of results) {
      expect(run.code, `${attack.label}: ${run.stderr}`).toBe(1);
      expect(run.stderr, attack.label).toMatch(attack.cause);
      expect(run.stderr, attack.label).not.toContain('ENOTEMPTY');
      expect(run.stderr.trim().split('\n'), attack.label).toHaveLength(1);
      expect((await admin.query(`SELECT 1 FROM tenants WHERE name = $1`, [name])).rowCount, attack.label).toBe(0);
    }
  }, 400_000);
});
