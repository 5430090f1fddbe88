import { describe, expect, test } from 'vitest';
import { hex, uniqueSlug } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';
import { cli } from './helpers.js';

interface Entry {
  id: number;
  created_at: string;
  actor: string;
  action: string;
  target_id: string | null;
  reason: string | null;
}

/** A tenant with an owner and one more member, then a setting: a few audit entries of known actions. On starter: a custom domain is one of them. */
async function tenantWithHistory(label: string): Promise<{ slug: string; member: string }> {
  const owner = `${label}-owner-${hex()}@example.test`;
  const member = `${label}-member-${hex()}@example.test`;
  const slug = uniqueSlug(label);
  for (const email of [owner, member]) expect((await cli(['user', 'create', email])).code).toBe(0);
  const created = await cli(['tenant', 'create', label, '--slug', slug, '--owner', owner, '--plan', 'starter']);
  expect(created.code, created.stderr).toBe(0);
  expect((await cli(['member', 'add', slug, member, 'member'])).code).toBe(0);
  expect((await cli(['setting', 'set', slug, 'support.hours', '"9-5"'])).code).toBe(0);
  return { slug, member };
}

describe.concurrent('audit', () => {
  test("lists a tenant's entries newest first, only that tenant's, filtered by action (exact or prefix)", async () => {
    const [{ slug, member }, other] = await Promise.all([tenantWithHistory('audit'), tenantWithHistory('audit-other')]);
    const all = await cli(['audit', slug, '--json']);
    expect(all.code, all.stderr).toBe(0);
    const entries = all.json<Entry[]>();
    expect(entries.map((entry) => entry.action)).toEqual(
      expect.arrayContaining(['tenants.insert', 'tenant_members.insert', 'tenant_settings.insert']),
    );
    const times = entries.map((entry) => Date.parse(entry.created_at));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    expect(entries.every((entry) => entry.actor.startsWith('cli:'))).toBe(true);
    const otherIds = new Set((await cli(['audit', other.slug, '--json'])).json<Entry[]>().map((entry) => entry.id));
    expect(entries.some((entry) => otherIds.has(entry.id))).toBe(false);

    const [members, exact, none] = await Promise.all([
      cli(['audit', slug, '--action', 'tenant_members', '--json']),
      cli(['audit', slug, '--action', 'tenant_settings.insert', '--json']),
      cli(['audit', slug, '--action', 'tenant_member', '--json']),
    ]);
    expect(members.json<Entry[]>().every((entry) => entry.action.startsWith('tenant_members.'))).toBe(true);
    expect(members.json<Entry[]>().length).toBe(entries.filter((entry) => entry.action.startsWith('tenant_members.')).length);
    expect(members.json<Entry[]>().length).toBeGreaterThanOrEqual(2);
    expect(exact.json<Entry[]>().map((entry) => [entry.action, entry.target_id])).toEqual([['tenant_settings.insert', 'support.hours']]);
    expect(none.json()).toEqual([]);
    expect(member).toContain('@');

    const human = await cli(['audit', slug, '--action', 'tenant_settings']);
    expect(human.stdout).toMatch(/^TIME\s+ACTOR\s+ACTION\s+TARGET\s+REASON\n/);
    expect(human.stdout).toContain('tenant_settings.insert');
  });

  test('--since keeps entries from then on: a timestamp or a duration', async () => {
    const { slug } = await tenantWithHistory('audit-since');
    const admin = poolAs('platform_admin', 1);
    let boundary: Date;
    try {
      // The database's clock, strictly after the entries written so far.
      await new Promise((resolve) => setTimeout(resolve, 50));
      boundary = (await admin.query<{ now: Date }>('SELECT clock_timestamp() AS now')).rows[0]!.now;
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      await admin.end();
    }
    expect((await cli(['domain', 'add', slug, `since-${hex()}.example.test`])).code).toBe(0);
    const [all, since, lastHour, future] = await Promise.all([
      cli(['audit', slug, '--json']),
      cli(['audit', slug, '--since', boundary.toISOString(), '--json']),
      cli(['audit', slug, '--since', '1h', '--json']),
      cli(['audit', slug, '--since', new Date(Date.now() + 3_600_000).toISOString(), '--json']),
    ]);
    const actions = (result: typeof all) => result.json<Entry[]>().map((entry) => entry.action).sort();
    expect(actions(all)).toEqual(expect.arrayContaining(['tenants.insert', 'tenant_members.insert', 'tenant_settings.insert', 'tenant_domains.insert']));
    expect(actions(since)).toEqual(['tenant_domains.insert']);
    expect(actions(lastHour)).toEqual(actions(all));
    expect(future.json()).toEqual([]);
    const limited = await cli(['audit', slug, '--limit', '1', '--json']);
    expect(limited.json<Entry[]>().map((entry) => entry.action)).toEqual(['tenant_domains.insert']);
  });

  test('bad input is a usage error that says what to give; an unknown tenant names the next command', async () => {
    const { slug } = await tenantWithHistory('audit-bad');
    const [badSince, badAction, badLimit, neither, both, unknown] = await Promise.all([
      cli(['audit', slug, '--since', 'yesterday']),
      cli(['audit', slug, '--action', "x'; DROP TABLE audit_log; --"]),
      cli(['audit', slug, '--limit', '0']),
      cli(['audit']),
      cli(['audit', slug, '--platform']),
      cli(['audit', `missing-${hex()}`]),
    ]);
    expect(badSince.code).toBe(2);
    expect(badSince.stderr).toContain("--since 'yesterday' is neither a duration (30m, 24h, 7d, 2w) nor a date");
    expect(badAction.code).toBe(2);
    expect(badAction.stderr).toContain('is not an action');
    expect(badLimit.code).toBe(2);
    expect(neither.code).toBe(2);
    expect(both.code).toBe(2);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('see `tenantry tenant list`');
  });
});
