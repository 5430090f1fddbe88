import { appendFile, cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { createScratchDatabase, services } from '../helpers/database.js';
import { cli, cliEnv } from './helpers.js';

describe.concurrent('tenantry CLI interface', () => {
  test('--help lists every command group and exits 0', async () => {
    const [top, tenant] = await Promise.all([cli(['--help']), cli(['tenant', '--help'])]);
    expect(top.code).toBe(0);
    for (const group of ['tenant', 'member', 'domain', 'setting', 'user', 'db']) expect(top.stdout).toContain(group);
    expect(tenant.code).toBe(0);
    for (const command of ['create', 'list', 'show', 'suspend', 'activate', 'delete', 'stats', 'purge-expired', 'export', 'import']) {
      expect(tenant.stdout).toContain(command);
    }
  });

  test('usage errors exit 2 with the problem on stderr', async () => {
    const results = await Promise.all([
      cli(['tenant', 'frobnicate']),
      cli(['tenant', 'list', '--status', 'sleeping']),
      cli(['member', 'add', 'acme', 'a@b.test', 'emperor']),
      cli(['tenant', 'export', 'acme']),
      cli(['tenant', 'create']),
    ]);
    for (const result of results) {
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(/error:/);
      expect(result.stdout).toBe('');
    }
    expect(results[2]!.stderr).toContain('owner, admin, member, guest');
  });

  test('a bad or missing setting is named, exit 1', async () => {
    const env = cliEnv({ PLATFORM_ADMIN_DATABASE_URL: 'mysql://nope' });
    const bad = await cli(['tenant', 'list'], { env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('PLATFORM_ADMIN_DATABASE_URL is invalid');
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);

    const withoutRedis = cliEnv();
    delete withoutRedis.REDIS_URL;
    const missing = await cli(['tenant', 'suspend', '00000000-0000-4000-8000-000000000000'], { env: withoutRedis });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/tenant '00000000-0000-4000-8000-000000000000' not found — see `tenantry tenant list`/);
  });

  test('db migrate and db status run the migration runner on DATABASE_URL', async () => {
    // A database of its own and a fixed copy of two migrations: other work may add or edit migrations meanwhile.
    const scratch = await createScratchDatabase({ migrated: false });
    const directory = await mkdtemp(path.join(os.tmpdir(), 'tenantry-cli-migrations-'));
    try {
      for (const name of ['1795900000000_foundation', '1795900100000_tenant_resolver']) {
        await cp(path.join(services().migrationsDir, name), path.join(directory, name), { recursive: true });
      }
      const env = cliEnv({ DATABASE_URL: scratch.url('tenantry_owner'), MIGRATIONS_DIR: directory });

      const pending = await cli(['db', 'status', '--json'], { env });
      expect(pending.code, pending.stderr).toBe(0);
      expect(pending.json()).toEqual([
        { version: '1795900000000', name: 'foundation', state: 'pending', applied_at: null },
        { version: '1795900100000', name: 'tenant_resolver', state: 'pending', applied_at: null },
      ]);

      const migrate = await cli(['db', 'migrate'], { env });
      expect(migrate.code, migrate.stderr).toBe(0);
      expect(migrate.stdout).toMatch(/^applied 1795900000000_foundation \(\d+ ms\)\napplied 1795900100000_tenant_resolver \(\d+ ms\)\n2 migration\(s\) applied\n$/);

      const [again, status, human] = await Promise.all([
        cli(['db', 'migrate', '--json'], { env }),
        cli(['db', 'status', '--json'], { env }),
        cli(['db', 'status'], { env }),
      ]);
      expect(again.json()).toEqual({ applied: [] });
      const rows = status.json<Array<{ state: string; applied_at: string | null }>>();
      expect(rows.map((row) => row.state)).toEqual(['applied', 'applied']);
      expect(rows.every((row) => row.applied_at !== null)).toBe(true);
      expect(human.stdout).toMatch(/applied\s+1795900000000_foundation/);

      // An applied file that was edited: status says so and exits 1, migrate refuses.
      await appendFile(path.join(directory, '1795900100000_tenant_resolver/up.sql'), '\n-- edited\n');
      const [edited, refused] = await Promise.all([cli(['db', 'status'], { env }), cli(['db', 'migrate'], { env })]);
      expect(edited.code).toBe(1);
      expect(edited.stdout).toMatch(/edited\s+1795900100000_tenant_resolver/);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^tenantry: refusing to migrate: 1795900100000_tenant_resolver \(edited after it was applied\)/);
    } finally {
      await rm(directory, { recursive: true, force: true });
      await scratch.drop();
    }
  });
});
