/**
 * Migration 1795900500000_billing over a database that has rows before it: a free tenant
 * that already has an API key and a verified custom domain keeps them (plans bind new
 * writes, they delete nothing); down.sql gives back exactly the schema and privileges it
 * found, and up.sql applies again on top.
 */
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { lintTenantIsolation } from '../../services/shared/src/db/isolation-lint.js';
import { migrate, rollback } from '../../services/shared/src/db/migrations.js';
import { dbError } from '../fixtures/seed.js';
import { createScratchDatabase, services, type ScratchDatabase } from '../helpers/database.js';
import { schemaSnapshot } from '../helpers/schema-snapshot.js';

const VERSION = '1795900500000';
let scratch: ScratchDatabase;
let owner: pg.Client;
let admin: pg.Client;
let before: string;
let through: string;

function migrationsWhere(keep: (version: string) => boolean): string {
  const directory = mkdtempSync(path.join(os.tmpdir(), 'tenantry-migrations-'));
  for (const entry of readdirSync(services().migrationsDir)) {
    if (keep(entry.split('_')[0]!)) cpSync(path.join(services().migrationsDir, entry), path.join(directory, entry), { recursive: true });
  }
  return directory;
}


let tenantId: string;

beforeAll(async () => {
  before = migrationsWhere((version) => version < VERSION);
  through = migrationsWhere((version) => version <= VERSION);
  scratch = await createScratchDatabase({ migrated: false });
  await migrate({ databaseUrl: scratch.url('tenantry_owner'), directory: before });
  owner = new pg.Client({ connectionString: scratch.url('tenantry_owner') });
  admin = new pg.Client({ connectionString: scratch.url('platform_admin') });
  await Promise.all([owner.connect(), admin.connect()]);
  // Before billing, a free tenant could have both.
  const { rows } = await admin.query<{ id: string }>("INSERT INTO tenants (slug, name) VALUES ('legacy-free', 'Legacy') RETURNING id");
  tenantId = rows[0]!.id;
  await admin.query("INSERT INTO api_keys (tenant_id, name, prefix, key_hash, role) VALUES ($1, 'old', 'tk_legacy01', 'h', 'member')", [tenantId]);
  await admin.query("INSERT INTO tenant_domains (tenant_id, domain, verified_at) VALUES ($1, 'legacy.example.test', now())", [tenantId]);
}, 120_000);

afterAll(async () => {
  await Promise.all([owner?.end(), admin?.end()]);
  await scratch?.drop();
  for (const directory of [before, through]) if (directory) rmSync(directory, { recursive: true, force: true });
});

test('up keeps what a free tenant had, binds what it writes next; down gives back the schema it found; up again', async () => {
  const found = await schemaSnapshot(owner);
  await migrate({ databaseUrl: scratch.url('tenantry_owner'), directory: through });

  const { rows: kept } = await admin.query(
    `SELECT t.plan_id, t.feature_overrides, (SELECT count(*)::int FROM api_keys WHERE tenant_id = t.id) AS keys,
            (SELECT count(*)::int FROM tenant_domains WHERE tenant_id = t.id AND verified_at IS NOT NULL) AS verified
       FROM tenants t WHERE t.id = $1`,
    [tenantId],
  );
  expect(kept).toEqual([{ plan_id: 'free', feature_overrides: {}, keys: 1, verified: 1 }]);
  const refused = await dbError(admin.query("INSERT INTO api_keys (tenant_id, name, prefix, key_hash, role) VALUES ($1, 'new', 'tk_legacy02', 'h', 'member')", [tenantId]));
  expect(refused?.constraint).toBe('plan_feature_api_keys');
  const migrated = await schemaSnapshot(owner);
  expect(migrated).not.toEqual(found);

  await rollback({ databaseUrl: scratch.url('tenantry_owner'), directory: through, steps: 1 });
  expect(await schemaSnapshot(owner)).toEqual(found);
  // Without the migration, nothing binds: the write it refused goes through.
  await admin.query("INSERT INTO api_keys (tenant_id, name, prefix, key_hash, role) VALUES ($1, 'new', 'tk_legacy02', 'h', 'member')", [tenantId]);

  await migrate({ databaseUrl: scratch.url('tenantry_owner'), directory: through });
  expect(await schemaSnapshot(owner)).toEqual(migrated);
  expect(await lintTenantIsolation(owner)).toEqual([]);
});
