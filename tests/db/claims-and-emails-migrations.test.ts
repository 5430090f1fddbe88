/**
 * Migrations 1795900330000_domain_claims and 1795900340000_email_normalisation over rows
 * that exist before them. The email one folds what SQL can (case, NFC), revokes the older
 * of two pending invitations that become one, and stops naming the rows SQL cannot fix (a
 * Unicode domain needs punycode; two accounts that fold to one mailbox need an operator).
 * The domain one rolls back over domains several tenants claim.
 */
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { migrate, rollback } from '../../services/shared/src/db/migrations.js';
import { createScratchDatabase, services, type ScratchDatabase } from '../helpers/database.js';

const VERSION = '1795900340000';
let scratch: ScratchDatabase;
let admin: pg.Client;
let before: string;
let through: string;

/** A copy of the migrations directory holding only the versions `keep` accepts. */
function migrationsWhere(keep: (version: string) => boolean): string {
  const directory = mkdtempSync(path.join(os.tmpdir(), 'tenantry-migrations-'));
  for (const entry of readdirSync(services().migrationsDir)) {
    if (keep(entry.split('_')[0]!)) cpSync(path.join(services().migrationsDir, entry), path.join(directory, entry), { recursive: true });
  }
  return directory;
}

const migrateThrough = () => migrate({ databaseUrl: scratch.url('tenantry_owner'), directory: through });

beforeAll(async () => {
  before = migrationsWhere((version) => version < VERSION);
  through = migrationsWhere((version) => version <= VERSION);
  scratch = await createScratchDatabase({ migrated: false });
  await migrate({ databaseUrl: scratch.url('tenantry_owner'), directory: before });
  admin = new pg.Client({ connectionString: scratch.url('platform_admin') });
  await admin.connect();
}, 120_000);

afterAll(async () => {
  await admin?.end();
  await scratch?.drop();
  for (const directory of [before, through]) if (directory) rmSync(directory, { recursive: true, force: true });
});

test('existing rows: folded where SQL can; otherwise the migration stops and names them', async () => {
  const { rows: users } = await admin.query<{ id: string }>(
    `INSERT INTO users (email) VALUES ('Ops@Example.TEST'), ('MU\u0308LLER@example.test'), ('ΣΟΦΙΑ@example.test') RETURNING id`,
  );
  const { rows: tenant } = await admin.query<{ id: string }>("INSERT INTO tenants (slug, name) VALUES ('legacy', 'Legacy') RETURNING id");
  const tenantId = tenant[0]!.id;
  // Two pending invitations that are one address once folded (the old index folded ASCII
  // only), and one to a Unicode domain.
  await admin.query(
    `INSERT INTO tenant_invitations (tenant_id, email, token_hash, created_at) VALUES
       ($1, 'ÖMER@example.test', 'a', now() - interval '2 days'), ($1, 'ömer@example.test', 'b', now() - interval '1 day'),
       ($1, 'Guest@Example.test', 'c', now()), ($1, 'invitee@ärzte.example', 'd', now())`,
    [tenantId],
  );

  // A Unicode domain: SQL has no IDN-to-punycode mapping.
  await expect(migrateThrough()).rejects.toThrow(/domain SQL cannot convert to punycode: invitee@ärzte\.example/);
  await admin.query(`UPDATE tenant_invitations SET email = 'invitee@xn--rzte-koa.example' WHERE tenant_id = $1 AND token_hash = 'd'`, [tenantId]);

  // Two accounts, one mailbox: merging them is the operator's decision.
  await admin.query(`INSERT INTO users (email) VALUES ('Müller@example.test')`);
  await expect(migrateThrough()).rejects.toThrow(/one mailbox under case folding: MU\u0308LLER@example\.test = Müller@example\.test/);
  await admin.query(`DELETE FROM users WHERE email = 'Müller@example.test'`);

  expect((await migrateThrough()).map((migration) => migration.version.toString())).toEqual([VERSION]);
  const { rows: folded } = await admin.query<{ email: string }>('SELECT email FROM users WHERE id = ANY($1::uuid[]) ORDER BY email', [users.map((row) => row.id)]);
  expect(folded.map((row) => row.email)).toEqual(['müller@example.test', 'ops@example.test', 'σοφια@example.test']);
  const { rows: invitations } = await admin.query<{ email: string; token_hash: string; status: string }>(
    'SELECT email, token_hash, status FROM tenant_invitations WHERE tenant_id = $1 ORDER BY token_hash',
    [tenantId],
  );
  expect(invitations).toEqual([
    { email: 'ömer@example.test', token_hash: 'a', status: 'revoked' },
    { email: 'ömer@example.test', token_hash: 'b', status: 'pending' },
    { email: 'guest@example.test', token_hash: 'c', status: 'pending' },
    { email: 'invitee@xn--rzte-koa.example', token_hash: 'd', status: 'pending' },
  ]);
}, 120_000);

test('1795900330000_domain_claims rolls back over shared claims: the verified claim, else the oldest, keeps the domain', async () => {
  const claims = migrationsWhere((version) => version <= '1795900330000');
  const database = await createScratchDatabase({ migrated: false });
  const client = new pg.Client({ connectionString: database.url('platform_admin') });
  try {
    await migrate({ databaseUrl: database.url('tenantry_owner'), directory: claims });
    await client.connect();
    const { rows } = await client.query<{ id: string; slug: string }>(
      "INSERT INTO tenants (slug, name) VALUES ('first', 'First'), ('second', 'Second'), ('third', 'Third') RETURNING id, slug",
    );
    const id = Object.fromEntries(rows.map((row) => [row.slug, row.id]));
    await client.query(
      `INSERT INTO tenant_domains (tenant_id, domain, verified_at, created_at) VALUES
         ($1, 'verified.example.test', NULL, now() - interval '1 day'), ($2, 'verified.example.test', now(), now()),
         ($1, 'open.example.test', NULL, now() - interval '1 day'), ($3, 'open.example.test', NULL, now())`,
      [id.first, id.second, id.third],
    );
    await rollback({ databaseUrl: database.url('tenantry_owner'), directory: claims, steps: 1 });
    const { rows: kept } = await client.query<{ domain: string; slug: string }>(
      'SELECT d.domain, t.slug FROM tenant_domains d JOIN tenants t ON t.id = d.tenant_id ORDER BY d.domain',
    );
    expect(kept).toEqual([
      { domain: 'open.example.test', slug: 'first' },
      { domain: 'verified.example.test', slug: 'second' },
    ]);
  } finally {
    await client.end();
    await database.drop();
    rmSync(claims, { recursive: true, force: true });
  }
}, 120_000);
