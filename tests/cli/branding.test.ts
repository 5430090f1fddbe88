import { describe, expect, test } from 'vitest';
import { hex, uniqueSlug } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';
import { cli } from './helpers.js';

async function tenantWithOwner(label: string, plan = 'free'): Promise<string> {
  const owner = `${label}-${hex()}@example.test`;
  const slug = uniqueSlug(label);
  expect((await cli(['user', 'create', owner])).code).toBe(0);
  const created = await cli(['tenant', 'create', label, '--slug', slug, '--owner', owner, '--plan', plan]);
  expect(created.code, created.stderr).toBe(0);
  return slug;
}

async function storedSettings(slug: string): Promise<unknown> {
  const admin = poolAs('platform_admin', 1);
  try {
    return (await admin.query<{ settings: unknown }>('SELECT settings FROM tenants WHERE slug = $1', [slug])).rows[0]!.settings;
  } finally {
    await admin.end();
  }
}

describe.concurrent('tenant branding', () => {
  test('set / get / unset round trip through tenants.settings.branding, audited by the tenants trigger', async () => {
    const slug = await tenantWithOwner('branding');
    const empty = await cli(['tenant', 'branding', 'get', slug]);
    expect(empty.stdout).toContain(`tenant ${slug} has no branding`);

    const set = await cli([
      'tenant', 'branding', 'set', slug,
      'display_name=Acme Café', 'primary_color=#FF6600', 'logo_url=https://cdn.example.test/logo.svg', 'support_email=Help@Example.TEST',
      '--json',
    ]);
    expect(set.code, set.stderr).toBe(0);
    const expected = { display_name: 'Acme Café', primary_color: '#FF6600', logo_url: 'https://cdn.example.test/logo.svg', support_email: 'help@example.test' };
    expect(set.json()).toMatchObject({ tenant: { slug }, branding: expected });
    const more = await cli(['tenant', 'branding', 'set', slug, 'accent_color=#0af']);
    expect(more.code, more.stderr).toBe(0);
    expect(more.stdout).toMatch(/primary_color:\s+#FF6600/);

    const got = await cli(['tenant', 'branding', 'get', slug, '--json']);
    expect(got.json()).toEqual({ tenant: { id: expect.any(String), slug }, branding: { ...expected, accent_color: '#0af' } });
    expect(await storedSettings(slug)).toEqual({ branding: { ...expected, accent_color: '#0af' } });

    const unset = await cli(['tenant', 'branding', 'unset', slug, 'logo_url', 'accent_color', '--json']);
    expect(unset.code, unset.stderr).toBe(0);
    const rest = Object.fromEntries(Object.entries(expected).filter(([key]) => key !== 'logo_url'));
    expect(await storedSettings(slug)).toEqual({ branding: rest });

    const audit = await cli(['audit', slug, '--action', 'tenants.update', '--json']);
    const updates = audit.json<Array<{ after: { settings: unknown } }>>();
    expect(updates).toHaveLength(3);
    expect(updates[0]!.after.settings).toEqual({ branding: rest });
  });

  test('unknown keys, bad values and malformed pairs are usage errors that name the fix; nothing is written', async () => {
    const slug = await tenantWithOwner('branding-bad');
    const attempts = await Promise.all([
      cli(['tenant', 'branding', 'set', slug, 'stripe_secret=sk_live_x']),
      cli(['tenant', 'branding', 'set', slug, 'primary_color=orange']),
      cli(['tenant', 'branding', 'set', slug, 'logo_url=javascript:alert(1)']),
      cli(['tenant', 'branding', 'set', slug, 'logo_url=http://cdn.example.test/logo.svg']),
      cli(['tenant', 'branding', 'set', slug, 'logo_url=https://user:pw@cdn.example.test/logo.svg']),
      cli(['tenant', 'branding', 'set', slug, 'support_email=not-an-address']),
      cli(['tenant', 'branding', 'set', slug, `display_name=${'x'.repeat(101)}`]),
      cli(['tenant', 'branding', 'set', slug, 'display_name=   ']),
      cli(['tenant', 'branding', 'set', slug, 'primary_color']),
      cli(['tenant', 'branding', 'set', slug, '__proto__=x']),
      cli(['tenant', 'branding', 'unset', slug, 'password']),
    ]);
    for (const attempt of attempts) expect(attempt.code, attempt.stdout + attempt.stderr).toBe(2);
    expect(attempts[0]!.stderr).toContain("'stripe_secret' is not a branding key — use display_name, primary_color, accent_color, logo_url");
    expect(attempts[1]!.stderr).toContain("primary_color 'orange' must be a hex colour such as #ff6600");
    expect(attempts[2]!.stderr).toContain('must be an https:// URL');
    expect(attempts[5]!.stderr).toContain('must be an email address');
    expect(attempts[8]!.stderr).toContain("'primary_color' is not KEY=VALUE");
    expect(await storedSettings(slug)).toEqual({});

    const missing = await cli(['tenant', 'branding', 'get', `missing-${hex()}`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('see `tenantry tenant list`');
  });
});

describe('tenant list --plan', () => {
  test('an unknown plan is a usage error naming the valid plans, like --status; a known one filters', async () => {
    const slug = await tenantWithOwner('plan-filter', 'starter');
    const [unknown, badStatus, starter, pro] = await Promise.all([
      cli(['tenant', 'list', '--plan', 'platinum']),
      cli(['tenant', 'list', '--status', 'gone']),
      cli(['tenant', 'list', '--plan', 'starter', '--json']),
      cli(['tenant', 'list', '--plan', 'pro', '--json']),
    ]);
    expect(unknown.code).toBe(2);
    // Other suites add plans of their own to the shared database: the seeded ones must be named.
    expect(unknown.stderr).toContain("argument 'platinum' is invalid. Allowed choices are ");
    for (const plan of ['free', 'starter', 'pro', 'enterprise']) expect(unknown.stderr).toMatch(new RegExp(`[ ,]${plan}[,.]`));
    expect(badStatus.code).toBe(2);
    expect(starter.code).toBe(0);
    expect(starter.json<Array<{ slug: string; plan_id: string }>>().find((row) => row.slug === slug)).toMatchObject({ plan_id: 'starter' });
    expect(starter.json<Array<{ plan_id: string }>>().every((row) => row.plan_id === 'starter')).toBe(true);
    expect(pro.json<Array<{ slug: string }>>().some((row) => row.slug === slug)).toBe(false);
  });
});
