import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createScratchDatabase, services, type ScratchDatabase } from '../helpers/database.js';
import { cli, cliEnv } from './helpers.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const TWO_MIGRATIONS = ['1795900000000_foundation', '1795900100000_tenant_resolver'];

/** `npm run --silent <script> -- …args`: what the README and docs tell people to type. */
function npmRun(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', '--silent', script, '--', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('one migration CLI: `tenantry db …`, and `npm run db:*` running the same commands', () => {
  let scratch: ScratchDatabase;
  let directory: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    scratch = await createScratchDatabase({ migrated: false });
    directory = await mkdtemp(path.join(os.tmpdir(), 'tenantry-db-cli-'));
    for (const name of TWO_MIGRATIONS) await cp(path.join(services().migrationsDir, name), path.join(directory, name), { recursive: true });
    env = cliEnv({ DATABASE_URL: scratch.url('tenantry_owner'), MIGRATIONS_DIR: directory });
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
    await scratch?.drop();
  });

  test('npm run db:status -- --json prints exactly what tenantry db status --json prints (one set of field names)', async () => {
    const [viaNpm, viaCli] = await Promise.all([npmRun('db:status', ['--json'], env), cli(['db', 'status', '--json'], { env })]);
    expect(viaNpm.code, viaNpm.stderr).toBe(0);
    expect(JSON.parse(viaNpm.stdout)).toEqual(viaCli.json());
    // The second runner printed appliedAt; the CLI prints snake_case like every other command.
    expect(viaNpm.stdout).not.toContain('appliedAt');
    expect(Object.keys(viaCli.json<Array<Record<string, unknown>>>()[0]!)).toEqual(['version', 'name', 'state', 'applied_at']);
  });

  test('migrate and rollback --steps: through npm and through the CLI, the same output', async () => {
    const migrated = await npmRun('db:migrate', ['--json'], env);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(JSON.parse(migrated.stdout)).toEqual({ applied: TWO_MIGRATIONS });

    const reverted = await cli(['db', 'rollback', '--steps', '1', '--json'], { env });
    expect(reverted.code, reverted.stderr).toBe(0);
    expect(reverted.json()).toEqual({ reverted: ['1795900100000_tenant_resolver'] });
    const human = await npmRun('db:rollback', ['--steps', '1'], env);
    expect(human.stdout).toBe('reverted 1795900000000_foundation\n');
    expect((await cli(['db', 'rollback'], { env })).stdout).toBe('nothing to revert\n');
    const badSteps = await cli(['db', 'rollback', '--steps', '0'], { env });
    expect(badSteps.code).toBe(2);
    expect(badSteps.stderr).toMatch(/whole number of at least 1/);

  });

  test('db lint: clean on the migrated schema (npm and CLI alike), fails on a tenant table without row-level security', async () => {
    const migrated = await createScratchDatabase({ migrated: true });
    const lintEnv = cliEnv({ DATABASE_URL: migrated.url('tenantry_owner') });
    const owner = new pg.Client({ connectionString: migrated.url('tenantry_owner') });
    await owner.connect();
    try {
      const [viaNpm, viaCli] = await Promise.all([npmRun('db:lint', ['--json'], lintEnv), cli(['db', 'lint', '--json'], { env: lintEnv })]);
      expect(viaCli.code, viaCli.stdout).toBe(0);
      expect(viaCli.json()).toEqual({ problems: [] });
      expect(JSON.parse(viaNpm.stdout)).toEqual(viaCli.json());

      await owner.query('CREATE TABLE public.leaky_notes (id uuid PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES public.tenants(id))');
      const lint = await cli(['db', 'lint', '--json'], { env: lintEnv });
      expect(lint.code).toBe(1);
      const { problems } = lint.json<{ problems: Array<{ table: string; rule: string }> }>();
      expect(problems).toContainEqual(expect.objectContaining({ table: 'leaky_notes', rule: 'rls-disabled' }));
      const human = await cli(['db', 'lint'], { env: lintEnv });
      expect(human.stdout).toMatch(/^rls-disabled\s+.*leaky_notes/m);
    } finally {
      await owner.end();
      await migrated.drop();
    }
  });

  test('db bootstrap creates the roles, the database and Hasura’s catalog from DATABASE_ADMIN_URL; refuses short passwords', async () => {
    const { endpoints, passwords } = services();
    const database = `tenantry_boot_${randomBytes(4).toString('hex')}`;
    const metadata = `${database}_hasura`;
    const bootEnv = cliEnv({
      DATABASE_ADMIN_URL: endpoints.postgresAdminUrl,
      POSTGRES_DB: database,
      TENANTRY_OWNER_DB_PASSWORD: passwords.tenantry_owner,
      HASURA_DB_PASSWORD: passwords.hasura_app,
      APP_SERVICE_DB_PASSWORD: passwords.app_service,
      PLATFORM_ADMIN_DB_PASSWORD: passwords.platform_admin,
    });
    const admin = new pg.Client({ connectionString: endpoints.postgresAdminUrl });
    await admin.connect();
    try {
      const booted = await npmRun('db:bootstrap', ['--hasura-metadata-db', metadata, '--json'], bootEnv);
      expect(booted.code, booted.stderr).toBe(0);
      expect(JSON.parse(booted.stdout)).toEqual({
        database,
        roles: ['tenantry_owner', 'hasura_app', 'app_service', 'platform_admin'],
        hasura_metadata_database: metadata,
      });
      const owners = await admin.query<{ datname: string; owner: string }>(
        'SELECT datname, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = ANY($1) ORDER BY datname',
        [[database, metadata]],
      );
      expect(owners.rows).toEqual([
        { datname: database, owner: 'tenantry_owner' },
        { datname: metadata, owner: 'hasura_app' },
      ]);

      const weak = await cli(['db', 'bootstrap'], { env: { ...bootEnv, APP_SERVICE_DB_PASSWORD: 'short' } });
      expect(weak.code).toBe(1);
      expect(weak.stderr).toMatch(/^tenantry: APP_SERVICE_DB_PASSWORD is invalid: must be at least 12 characters/);
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      await admin.query(`DROP DATABASE IF EXISTS "${metadata}" WITH (FORCE)`);
      await admin.end();
    }
  });
});
