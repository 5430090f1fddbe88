import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Client as S3Client } from 'minio';
import type pg from 'pg';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listTenantTables } from '../../services/shared/src/db/isolation-lint.js';
import { SEEDED_TABLES, seedTenant, uniqueSlug } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';
import { cli, objectNames, s3Client } from './helpers.js';

let admin: pg.Pool;
let s3: S3Client;
let work: string;
beforeAll(async () => {
  admin = poolAs('platform_admin');
  s3 = s3Client();
  work = await mkdtemp(path.join(os.tmpdir(), 'tenantry-cli-transfer-'));
});
afterAll(async () => {
  await admin.end();
  await rm(work, { recursive: true, force: true });
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
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
      if (typeof value === 'string') return UUID.test(value) ? (labels.get(value) ?? '<id>') : value;
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

describe.concurrent('tenant export and import', () => {
  test('round trip: the same data under new ids, users matched by email or created, objects copied', async () => {
    const source = await seedTenant(admin, 'exported');
    const bucket = `tenant-${source.tenantId}`;
    await s3.makeBucket(bucket);
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
    expect(manifest.objects.map((object: { key: string }) => object.key).sort()).toEqual(['avatars/owner.png', 'docs/read me.txt']);

    // While the source still exists its unique values (domain, key prefix …) clash: refused, nothing left behind.
    const clashSlug = uniqueSlug('clash');
    const clash = await cli(['tenant', 'import', file, '--slug', clashSlug]);
    expect(clash.code).toBe(1);
    expect(clash.stderr).toMatch(/^tenantry: \w+ rows clash with data already here .* — is the source tenant still in this database\? Purge it first or edit the export\n$/);
    expect((await admin.query(`SELECT 1 FROM tenants WHERE slug = $1`, [clashSlug])).rowCount).toBe(0);

    // The export is on the source's record.
    const { rows: exportAudit } = await admin.query(
      `SELECT actor, after FROM audit_log WHERE tenant_id = $1 AND action = 'tenants.export'`,
      [source.tenantId],
    );
    expect(exportAudit).toHaveLength(1);
    expect(exportAudit[0].actor).toMatch(/^cli:/);
    expect(exportAudit[0].after).toMatchObject({ file: path.basename(file), users: 2, objects: 2, rows: { projects: 3 } });

    // A reserved slug and an existing slug are refused.
    const reserved = await cli(['tenant', 'import', file, '--slug', 'www']);
    expect(reserved.code).toBe(1);
    expect(reserved.stderr).toContain("slug 'www' is not allowed");
    const taken = await cli(['tenant', 'import', file]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toBe(`tenantry: slug '${source.slug}' is already taken — choose another with --slug\n`);

    // Move the tenant: purge the source, drop one of its users so the import creates it again.
    expect((await cli(['tenant', 'delete', source.slug, '--purge-data', '--yes'])).code).toBe(0);
    await admin.query(`DELETE FROM users WHERE id = $1`, [source.memberUserId]);

    const slug = uniqueSlug('imported');
    const imported = await cli(['tenant', 'import', file, '--slug', slug, '--json']);
    expect(imported.code, imported.stderr).toBe(0);
    const result = imported.json<{ tenant_id: string; slug: string; rows: Record<string, number>; users_created: number; users_matched: number; objects: number }>();
    expect(result).toMatchObject({ slug, users_created: 1, users_matched: 1, objects: 2, source: { tenant_id: source.tenantId, slug: source.slug } });
    expect(result.tenant_id).not.toBe(source.tenantId);

    const after = await comparable(result.tenant_id);
    expect(after).toEqual(before);
    // New ids: no exported primary key survives.
    const { rows: projects } = await admin.query<{ id: string }>(`SELECT id FROM projects WHERE tenant_id = $1`, [result.tenant_id]);
    expect(projects.map((row) => row.id).filter((id) => source.projectIds.includes(id))).toEqual([]);
    const { rows: member } = await admin.query<{ id: string; password_hash: string | null }>(
      `SELECT u.id, u.password_hash FROM users u JOIN tenant_members m ON m.user_id = u.id WHERE m.tenant_id = $1 AND lower(u.email) = lower($2)`,
      [result.tenant_id, source.memberEmail],
    );
    expect(member).toHaveLength(1);
    expect(member[0]!.id).not.toBe(source.memberUserId);
    expect(member[0]!.password_hash).toBeNull();
    const created = await admin.query(`SELECT tenant_id, after FROM audit_log WHERE action = 'users.insert' AND target_id = $1`, [member[0]!.id]);
    expect(created.rows).toEqual([{ tenant_id: null, after: { email: source.memberEmail } }]);

    const newBucket = `tenant-${result.tenant_id}`;
    expect(await objectNames(s3, newBucket)).toEqual(['avatars/owner.png', 'docs/read me.txt']);
    const chunks: Buffer[] = [];
    for await (const chunk of await s3.getObject(newBucket, 'docs/read me.txt')) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('hello');

    const show = await cli(['tenant', 'show', slug, '--json']);
    expect(show.json()).toMatchObject({ slug, member_count: 2, domains: [{ domain: source.domain, verified: true, is_primary: true }] });

    const cleanup = await cli(['tenant', 'delete', slug, '--purge-data', '--yes']);
    expect(cleanup.code, cleanup.stderr).toBe(0);
  });

  test('an import writes only its own tenant, whatever tenant ids the file names', async () => {
    const neighbour = await seedTenant(admin, 'neighbour');
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
    for (const [file, rows] of Object.entries(files)) {
      await writeFile(path.join(forged, file), rows.map((row) => `${JSON.stringify(row)}\n`).join(''));
    }
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
    const imported = await cli(['tenant', 'import', file, '--slug', slug, '--json']);
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
    const refused = await cli(['tenant', 'import', escaping, '--slug', uniqueSlug('escaping')]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('the export names a file outside itself (../../../etc/passwd)');
  });

  test('import refuses a file that is not an export', async () => {
    const bogus = path.join(work, 'bogus.tar.gz');
    await writeFile(bogus, 'not a tarball');
    const [garbage, missing] = await Promise.all([
      cli(['tenant', 'import', bogus, '--slug', uniqueSlug('bogus')]),
      cli(['tenant', 'import', path.join(work, 'missing.tar.gz')]),
    ]);
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toMatch(/is not a (version 1 )?tenant export/);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('cannot read');
  });
});
