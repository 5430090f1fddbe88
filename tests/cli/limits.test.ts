import { afterAll, describe, expect, test } from 'vitest';
import { uniqueSlug } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';
import { cli, ownerEmail, purgesSince, redisClient, streamTail } from './helpers.js';

interface LimitInForce {
  in_force: number | null;
  override: number | null;
  plan: number | null;
}
interface LimitsChange {
  tenant_id: string;
  slug: string;
  plan_id: string;
  changed: boolean;
  changes: Record<string, { before: number | null; after: number | null }>;
  limits: Record<'max_api_requests_month' | 'max_users' | 'max_storage_bytes', LimitInForce>;
}
interface AuditEntry {
  actor: string;
  reason: string | null;
  before: Record<string, unknown>;
  after: Record<string, unknown>;
}

describe('tenant limits set / show', () => {
  const admin = poolAs('platform_admin', 2);
  // The edge's resolver answers as app_service.
  const resolver = poolAs('app_service', 1);
  const redis = redisClient();
  afterAll(async () => {
    await admin.end();
    await resolver.end();
    redis.disconnect();
  });

  async function newTenant(label: string): Promise<{ id: string; slug: string }> {
    const slug = uniqueSlug(label);
    const created = await cli(['tenant', 'create', label, '--slug', slug, '--owner', await ownerEmail(label), '--json']);
    expect(created.code, created.stderr).toBe(0);
    return { id: created.json<{ id: string }>().id, slug };
  }

  const overrides = async (tenantId: string) =>
    (
      await admin.query(
        `SELECT max_api_requests_month::float8 AS api, max_users AS users, max_storage_bytes::float8 AS storage FROM tenants WHERE id = $1`,
        [tenantId],
      )
    ).rows[0] as { api: number | null; users: number | null; storage: number | null };
  const auditEntries = async (tenantId: string) =>
    (
      await admin.query<AuditEntry>(
        `SELECT actor, reason, before, after FROM audit_log WHERE tenant_id = $1 AND action = 'tenants.update' ORDER BY id`,
        [tenantId],
      )
    ).rows;

  test('set overrides: one audit entry with the reason, an edge purge, the resolver and app.tenant_limits answer the new values', async () => {
    const tenant = await newTenant('limits-set');
    const tail = await streamTail(redis);
    const result = await cli([
      'tenant', 'limits', 'set', tenant.slug,
      '--api-requests-month', '50000', '--users', '7', '--storage', '10GiB',
      '--reason', 'contract 2026-114', '--json',
    ]);
    expect(result.code, result.stderr).toBe(0);
    const change = result.json<LimitsChange>();
    expect(change).toMatchObject({
      tenant_id: tenant.id,
      plan_id: 'free',
      changed: true,
      changes: {
        max_api_requests_month: { before: null, after: 50000 },
        max_users: { before: null, after: 7 },
        max_storage_bytes: { before: null, after: 10 * 1024 ** 3 },
      },
      limits: {
        max_api_requests_month: { in_force: 50000, override: 50000, plan: 10000 },
        max_users: { in_force: 7, override: 7, plan: 3 },
        max_storage_bytes: { in_force: 10 * 1024 ** 3, override: 10 * 1024 ** 3, plan: 1024 ** 3 },
      },
    });
    expect(await overrides(tenant.id)).toEqual({ api: 50000, users: 7, storage: 10 * 1024 ** 3 });

    const entries = await auditEntries(tenant.id);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      reason: 'contract 2026-114',
      before: { max_api_requests_month: null, max_users: null },
      after: { max_api_requests_month: 50000, max_users: 7 },
    });
    expect(entries[0]!.actor).toMatch(/^cli:/);
    expect(await purgesSince(redis, tail)).toContainEqual({ tenant_id: tenant.id, slug: tenant.slug });

    const { rows: resolved } = await resolver.query(`SELECT max_api_requests_month::float8 AS quota FROM app.resolve_tenant_by_slug($1)`, [tenant.slug]);
    expect(resolved).toEqual([{ quota: 50000 }]);
    const { rows: enforced } = await admin.query(`SELECT max_users, max_api_requests_month::float8 AS api FROM app.tenant_limits($1)`, [tenant.id]);
    expect(enforced).toEqual([{ max_users: 7, api: 50000 }]);

    // The table for humans names the override and the plan's value.
    const shown = await cli(['tenant', 'limits', 'show', tenant.slug]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`limits of tenant ${tenant.slug} (plan free):`);
    expect(shown.stdout).toMatch(/^LIMIT\s+IN FORCE\s+OVERRIDE\s+PLAN$/m);
    expect(shown.stdout).toMatch(/^api requests\/month\s+50000\s+50000\s+10000$/m);
    expect(shown.stdout).toMatch(/^storage bytes\s+10737418240 \(10 GiB\)\s+10737418240 \(10 GiB\)\s+1073741824 \(1 GiB\)$/m);
  });

  test("'plan' clears an override back to the plan's limit; the same values again change nothing (no audit entry, no purge)", async () => {
    const tenant = await newTenant('limits-clear');
    expect((await cli(['tenant', 'limits', 'set', tenant.slug, '--api-requests-month', '20000', '--users', '5', '--reason', 'trial'])).code).toBe(0);

    const tail = await streamTail(redis);
    const cleared = await cli(['tenant', 'limits', 'set', tenant.slug, '--api-requests-month', 'plan', '--reason', 'trial over']);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stdout).toContain(`tenant ${tenant.slug}: api requests/month 20000 → the plan's`);
    expect(cleared.stdout).toMatch(/^api requests\/month\s+10000\s+-\s+10000$/m);
    expect(await overrides(tenant.id)).toEqual({ api: null, users: 5, storage: null });
    const { rows: resolved } = await resolver.query(`SELECT max_api_requests_month::float8 AS quota FROM app.resolve_tenant_by_id($1)`, [tenant.id]);
    expect(resolved).toEqual([{ quota: 10000 }]);
    expect(await purgesSince(redis, tail)).toContainEqual({ tenant_id: tenant.id, slug: tenant.slug });
    const entries = await auditEntries(tenant.id);
    expect(entries).toHaveLength(2);
    expect(entries[1]).toMatchObject({ reason: 'trial over', after: { max_api_requests_month: null, max_users: 5 } });

    const tailAgain = await streamTail(redis);
    const again = await cli(['tenant', 'limits', 'set', tenant.slug, '--users', '5', '--api-requests-month', 'plan', '--reason', 'again', '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.json<LimitsChange>()).toMatchObject({ changed: false, changes: {} });
    expect(await auditEntries(tenant.id)).toHaveLength(2);
    expect(await purgesSince(redis, tailAgain)).toEqual([]);
  });

  test('storage takes bytes or a unit (decimal and binary)', async () => {
    const tenant = await newTenant('limits-storage');
    for (const [typed, bytes] of [['500MB', 500_000_000], ['2TiB', 2 * 1024 ** 4], ['123456', 123456]] as const) {
      const result = await cli(['tenant', 'limits', 'set', tenant.slug, '--storage', typed, '--reason', 'storage', '--json']);
      expect(result.code, result.stderr).toBe(0);
      expect(result.json<LimitsChange>().limits.max_storage_bytes).toEqual({ in_force: bytes, override: bytes, plan: 1024 ** 3 });
    }
  });

  test('bad input is a usage error (exit 2) with a clear message, and changes nothing', async () => {
    const tenant = await newTenant('limits-bad');
    const tail = await streamTail(redis);
    const refused: Array<[string[], RegExp]> = [
      [['--api-requests-month', '-1'], /--api-requests-month '-1' is not a whole number from 1 to 1000000000000, or 'plan'/],
      [['--api-requests-month', '0'], /--api-requests-month '0' is out of range/],
      [['--api-requests-month', '1.5'], /is not a whole number/],
      [['--api-requests-month', '1e6'], /is not a whole number/],
      [['--api-requests-month', '5000000000000'], /is out of range: give a whole number from 1 to 1000000000000/],
      [['--users', 'many'], /--users 'many' is not a whole number from 1 to 1000000/],
      [['--users', '2147483648'], /--users '2147483648' is out of range/],
      [['--storage', '10 parsecs'], /--storage '10 parsecs' is not a whole number .*with a unit: 500MB, 10GiB/],
      [['--storage', '2PiB'], /--storage '2PiB' is out of range/],
      [[], /no limit to set — give at least one of --api-requests-month, --users, --storage/],
    ];
    for (const [flags, message] of refused) {
      const result = await cli(['tenant', 'limits', 'set', tenant.slug, ...flags, '--reason', 'bad input']);
      expect(result.code, `${flags.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    const noReason = await cli(['tenant', 'limits', 'set', tenant.slug, '--users', '9']);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toContain("required option '--reason <text>' not specified");
    const emptyReason = await cli(['tenant', 'limits', 'set', tenant.slug, '--users', '9', '--reason', ' ']);
    expect(emptyReason.code).toBe(2);
    expect(emptyReason.stderr).toContain('--reason is empty');
    const unknownTenant = await cli(['tenant', 'limits', 'set', uniqueSlug('nobody'), '--users', '9', '--reason', 'x']);
    expect(unknownTenant.code).toBe(2);
    expect(unknownTenant.stderr).toContain('not found — see `tenantry tenant list`');

    expect(await overrides(tenant.id)).toEqual({ api: null, users: null, storage: null });
    expect(await auditEntries(tenant.id)).toEqual([]);
    expect(await purgesSince(redis, tail)).toEqual([]);
  });
});
