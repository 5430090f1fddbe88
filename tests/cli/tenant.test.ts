import { createHash } from 'node:crypto';
import { once } from 'node:events';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Redis } from 'ioredis';
import type { Client as S3Client } from 'minio';
import type pg from 'pg';
import { hex, uniqueSlug } from '../fixtures/seed.js';
import { MailSink } from '../auth/harness.js';
import { poolAs, services } from '../helpers/database.js';
import { aclUser, connectAsTenant, tenantCredentials } from '../storage/lifecycle-helpers.js';
import { cli, cliEnv, cliInTerminal, purgesSince, redisClient, s3Client, streamTail, PURGE_STREAM } from './helpers.js';

let admin: pg.Pool;
let redis: Redis;
let s3: S3Client;
/** The email of an existing user: every tenant has an owner (`tenant create --owner`). */
let owner: string;

beforeAll(async () => {
  admin = poolAs('platform_admin');
  redis = redisClient();
  s3 = s3Client();
  owner = `tenant-owner-${hex(5)}@example.test`;
  await admin.query(`INSERT INTO users (email, display_name, email_verified_at) VALUES ($1, 'Owner', now())`, [owner]);
});
afterAll(async () => {
  await admin.end();
  await redis.del(PURGE_STREAM);
  redis.disconnect();
});

interface TenantJson {
  id: string;
  slug: string;
  name: string;
  status: string;
  plan_id: string;
  owner_user_id: string | null;
  suspended_at: string | null;
  deleted_at: string | null;
  purge_after: string | null;
  created_at: string;
}

describe.concurrent('tenant create', () => {
  test('generates a slug from the name, takes --slug, --plan and --owner, and audits as cli:<user>', async () => {
    const tag = hex(4);
    const email = `owner-${tag}@example.test`;
    expect((await cli(['user', 'create', email, '--name', 'Owner'])).code).toBe(0);

    const generated = await cli(['tenant', 'create', `Café Crème ${tag}`, '--json', '--owner', owner]);
    expect(generated.code, generated.stderr).toBe(0);
    const first = generated.json<TenantJson>();
    expect(first.slug).toBe(`cafe-creme-${tag}`);
    expect(first).toMatchObject({ name: `Café Crème ${tag}`, status: 'active', plan_id: 'free' });

    // The same name again gets the next free slug.
    const again = (await cli(['tenant', 'create', `Café Crème ${tag}`, '--json', '--owner', owner])).json<TenantJson>();
    expect(again.slug).toBe(`cafe-creme-${tag}-2`);

    const slug = uniqueSlug('explicit');
    const explicit = await cli(['tenant', 'create', 'Explicit Inc', '--slug', slug, '--plan', 'pro', '--owner', email]);
    expect(explicit.code, explicit.stderr).toBe(0);
    expect(explicit.stdout).toMatch(new RegExp(`created tenant ${slug} \\([0-9a-f-]{36}\\) on plan pro`));

    const { rows } = await admin.query(
      `SELECT t.plan_id, t.owner_user_id = u.id AS owner_set, m.role, a.actor
         FROM tenants t JOIN users u ON lower(u.email) = $2
         JOIN tenant_members m ON m.tenant_id = t.id AND m.user_id = u.id
         JOIN audit_log a ON a.tenant_id = t.id AND a.action = 'tenants.insert'
        WHERE t.slug = $1`,
      [slug, email],
    );
    expect(rows).toEqual([{ plan_id: 'pro', owner_set: true, role: 'owner', actor: `cli:${os.userInfo().username}` }]);
  });

  test('refuses a reserved slug, a taken slug, a bad slug, an unknown plan and an unknown owner', async () => {
    const taken = uniqueSlug('taken');
    expect((await cli(['tenant', 'create', 'Taken', '--slug', taken, '--owner', owner])).code).toBe(0);
    const [reserved, duplicate, malformed, plan, unknownOwner] = await Promise.all([
      cli(['tenant', 'create', 'Admin', '--slug', 'admin', '--owner', owner]),
      cli(['tenant', 'create', 'Again', '--slug', taken, '--owner', owner]),
      cli(['tenant', 'create', 'Bad', '--slug', 'Bad--Slug', '--owner', owner]),
      cli(['tenant', 'create', 'Planless', '--slug', uniqueSlug('plan'), '--plan', 'platinum', '--owner', owner]),
      cli(['tenant', 'create', 'Ownerless', '--owner', crypto.randomUUID()]),
    ]);
    expect(reserved).toMatchObject({ code: 1, stdout: '' });
    expect(reserved.stderr).toBe(
      "tenantry: slug 'admin' is not allowed (3–63 characters of a-z, 0-9 and -, not a reserved word) — choose another with --slug\n",
    );
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toContain(`slug '${taken}' is already taken — choose another with --slug`);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toContain("slug 'Bad--Slug' is not allowed");
    expect(plan.code).toBe(1);
    expect(plan.stderr).toContain("plan 'platinum' does not exist");
    expect(unknownOwner.code).toBe(1);
    expect(unknownOwner.stderr).toMatch(/user '[0-9a-f-]{36}' not found — see `tenantry user list`/);
    // A generated slug avoids reserved words.
    const admins = await cli(['tenant', 'create', 'Admin', '--json', '--owner', owner]);
    expect(admins.code, admins.stderr).toBe(0);
    expect(admins.json<TenantJson>().slug).toMatch(/^admin-\d+$/);
  });
});

describe.concurrent('tenant list, show, stats', () => {
  test('list filters by status and plan; show has members, limits, usage and domains; stats totals', async () => {
    const slug = uniqueSlug('shown');
    const created = (await cli(['tenant', 'create', 'Shown', '--slug', slug, '--plan', 'starter', '--json', '--owner', owner])).json<TenantJson>();
    await admin.query(
      `INSERT INTO tenant_usage (tenant_id, metric, period_start, quantity)
       VALUES ($1, 'api.requests', date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', 7)`,
      [created.id],
    );
    // Hourly samples of a sampled metric: the month's figure is the latest, not their sum.
    await admin.query(
      `INSERT INTO tenant_usage (tenant_id, metric, period_start, quantity)
       SELECT $1, 'storage.bytes', (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(hours => h)) AT TIME ZONE 'UTC', 100 * (h + 1)
       FROM generate_series(0, 2) AS h`,
      [created.id],
    );
    await admin.query(`INSERT INTO tenant_domains (tenant_id, domain, verified_at) VALUES ($1, $2, now())`, [created.id, `${slug}.example.test`]);

    const [list, filtered, otherPlan, human, show, showById, showHuman, stats, statsHuman, unknown] = await Promise.all([
      cli(['tenant', 'list', '--json']),
      cli(['tenant', 'list', '--status', 'active', '--plan', 'starter', '--json']),
      cli(['tenant', 'list', '--plan', 'enterprise', '--json']),
      cli(['tenant', 'list']),
      cli(['tenant', 'show', slug, '--json']),
      cli(['tenant', 'show', created.id, '--json']),
      cli(['tenant', 'show', slug]),
      cli(['tenant', 'stats', '--json']),
      cli(['tenant', 'stats']),
      cli(['tenant', 'show', `missing-${hex(4)}`]),
    ]);
    const listed = list.json<Array<Record<string, unknown>>>().find((row) => row.slug === slug);
    expect(listed).toEqual({
      id: created.id,
      slug,
      name: 'Shown',
      status: 'active',
      plan_id: 'starter',
      member_count: 1,
      created_at: created.created_at,
    });
    expect(filtered.json<TenantJson[]>().map((row) => row.slug)).toContain(slug);
    expect(otherPlan.json<TenantJson[]>().map((row) => row.slug)).not.toContain(slug);
    expect(human.stdout.split('\n')[0]).toMatch(/^SLUG\s+NAME\s+STATUS\s+PLAN\s+MEMBERS\s+CREATED\s+ID$/);
    expect(human.stdout).toMatch(new RegExp(`${slug}\\s+Shown\\s+active\\s+starter\\s+1`));

    const details = show.json<Record<string, unknown>>();
    expect(details).toMatchObject({
      id: created.id,
      slug,
      member_count: 1,
      limits: { max_users: 10, max_storage_bytes: 10737418240, max_api_requests_month: 100000, rate_limit_rps: 20 },
      usage_this_month: { 'api.requests': 7 },
      domains: [{ domain: `${slug}.example.test`, verified: true, is_primary: false }],
    });
    expect((details.usage_this_month as Record<string, number>)['storage.bytes']).toBe(300);
    expect(showById.json()).toEqual(details);
    expect(showHuman.stdout).toMatch(/members:\s+1 of 10/);
    expect(showHuman.stdout).toContain('api.requests=7');

    const totals = stats.json<{ total: number; by_status: Record<string, number>; by_plan: Record<string, number> }>();
    expect(Object.keys(totals.by_status).sort()).toEqual(['active', 'deleted', 'suspended']);
    expect(totals.by_status.active).toBeGreaterThanOrEqual(1);
    expect(totals.by_plan.starter).toBeGreaterThanOrEqual(1);
    expect(totals.total).toBe(totals.by_status.active! + totals.by_status.suspended! + totals.by_status.deleted!);
    expect(statsHuman.stdout).toMatch(/STATUS\s+TENANTS/);

    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^tenantry: tenant 'missing-[0-9a-f]+' not found — see `tenantry tenant list`\n$/);
  });
});

describe.concurrent('tenant lifecycle', () => {
  test('suspend and activate change the status, publish edge purges and write the audit log', async () => {
    const slug = uniqueSlug('life');
    // On starter: the verified custom domain below needs custom_domains.
    const created = (await cli(['tenant', 'create', 'Life', '--slug', slug, '--plan', 'starter', '--json', '--owner', owner])).json<TenantJson>();
    await admin.query(`INSERT INTO tenant_domains (tenant_id, domain, verified_at) VALUES ($1, $2, now())`, [created.id, `${slug}.example.test`]);
    const tail = await streamTail(redis);

    const suspended = await cli(['tenant', 'suspend', slug, '--reason', 'unpaid invoices', '--json']);
    expect(suspended.code, suspended.stderr).toBe(0);
    expect(suspended.json()).toMatchObject({ status: 'suspended', suspension_reason: 'unpaid invoices', changed: true });
    expect(suspended.json<TenantJson>().suspended_at).not.toBeNull();
    const purges = await purgesSince(redis, tail);
    expect(purges).toContainEqual({ tenant_id: created.id, slug });
    expect(purges).toContainEqual({ domain: `${slug}.example.test` });

    const twice = await cli(['tenant', 'suspend', slug]);
    expect(twice.stdout).toContain('already suspended');

    const tail2 = await streamTail(redis);
    const activated = await cli(['tenant', 'activate', created.id]);
    expect(activated.code, activated.stderr).toBe(0);
    expect(activated.stdout).toBe(`activated tenant ${slug}\n`);
    expect(await purgesSince(redis, tail2)).toContainEqual({ tenant_id: created.id, slug });

    const { rows } = await admin.query<{ status: string; suspended_at: Date | null; reason: string | null; actor: string }>(
      `SELECT t.status, t.suspended_at,
              (SELECT reason FROM audit_log WHERE tenant_id = t.id AND action = 'tenants.update' AND after ->> 'status' = 'suspended') AS reason,
              (SELECT actor FROM audit_log WHERE tenant_id = t.id AND action = 'tenants.update' ORDER BY id DESC LIMIT 1) AS actor
         FROM tenants t WHERE t.id = $1`,
      [created.id],
    );
    expect(rows[0]).toEqual({ status: 'active', suspended_at: null, reason: 'unpaid invoices', actor: `cli:${os.userInfo().username}` });
  });

  test('delete refuses without --yes off a terminal, then soft-deletes with a retention period', async () => {
    const slug = uniqueSlug('doomed');
    const created = (await cli(['tenant', 'create', 'Doomed', '--slug', slug, '--json', '--owner', owner])).json<TenantJson>();

    const refused = await cli(['tenant', 'delete', slug]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`tenantry: refusing to delete tenant '${slug}' without confirmation — pass --yes when not at a terminal\n`);
    expect((await admin.query(`SELECT status FROM tenants WHERE id = $1`, [created.id])).rows[0].status).toBe('active');

    const tail = await streamTail(redis);
    const deleted = await cli(['tenant', 'delete', slug, '--yes', '--json'], { env: cliEnv({ TENANTRY_RETENTION_DAYS: '7' }) });
    expect(deleted.code, deleted.stderr).toBe(0);
    const body = deleted.json<TenantJson>();
    expect(body.status).toBe('deleted');
    const days = (Date.parse(body.purge_after!) - Date.parse(body.deleted_at!)) / 86_400_000;
    expect(days).toBeCloseTo(7, 3);
    expect(await purgesSince(redis, tail)).toContainEqual({ tenant_id: created.id, slug });

    // The slug stays reserved while the tenant waits for its purge.
    const reuse = await cli(['tenant', 'create', 'Reuse', '--slug', slug, '--owner', owner]);
    expect(reuse.code).toBe(1);
    expect(reuse.stderr).toContain('already taken');
    // Nothing is past its retention: purge-expired leaves it.
    const listed = await cli(['tenant', 'list', '--status', 'deleted', '--json']);
    expect(listed.json<TenantJson[]>().map((row) => row.slug)).toContain(slug);
  });
});

describe.concurrent('tenant suspend without Redis', () => {
  test('keeps the suspension and says the edges were not told', async () => {
    const env = cliEnv({ REDIS_URL: 'redis://127.0.0.1:1' });
    const slug = uniqueSlug('noredis');
    expect((await cli(['tenant', 'create', 'No Redis', '--slug', slug, '--owner', owner])).code).toBe(0);
    const suspended = await cli(['tenant', 'suspend', slug], { env });
    expect(suspended.code).toBe(1);
    expect(suspended.stderr).toMatch(/^tenantry: the change is saved but the edges could not be told \(.*\) — check REDIS_URL; edges drop the cached answer within their TTL\n$/);
    expect((await admin.query(`SELECT status FROM tenants WHERE slug = $1`, [slug])).rows[0].status).toBe('suspended');
  });
});

describe.concurrent('tenant namespaces', () => {
  test('create makes the bucket and the Redis ACL user (on, no password yet); in the prefix layout, the user and no bucket', async () => {
    const created = await cli(['tenant', 'create', 'Spaces', '--slug', uniqueSlug('spaces'), '--json', '--owner', owner]);
    expect(created.code, created.stderr).toBe(0);
    const tenant = created.json<TenantJson>();
    expect(await s3.bucketExists(`tenant-${tenant.id}`)).toBe(true);
    expect(await aclUser(redis, tenant.id)).toEqual({ on: true, hasPassword: false });

    const sharedBucket = `cli-shared-${hex(4)}`;
    const prefixEnv = cliEnv({ STORAGE_LAYOUT: 'prefix', STORAGE_SHARED_BUCKET: sharedBucket });
    const inPrefix = await cli(['tenant', 'create', 'Prefixed', '--slug', uniqueSlug('prefixed'), '--json', '--owner', owner], { env: prefixEnv });
    expect(inPrefix.code, inPrefix.stderr).toBe(0);
    const prefixed = inPrefix.json<TenantJson>();
    expect(await s3.bucketExists(`tenant-${prefixed.id}`)).toBe(false);
    expect(await s3.bucketExists(sharedBucket)).toBe(true);
    expect(await aclUser(redis, prefixed.id)).toEqual({ on: true, hasPassword: false });

    const badLayout = await cli(['tenant', 'create', 'Bad layout', '--owner', owner], { env: cliEnv({ STORAGE_LAYOUT: 'sideways' }) });
    expect(badLayout.code).toBe(1);
    expect(badLayout.stderr).toMatch(/^tenantry: STORAGE_LAYOUT: .* — set it as the storage service has it\n$/);
  });

  test('S3 unreachable: create fails and leaves no tenant behind', async () => {
    const slug = uniqueSlug('nos3');
    const refused = await cli(['tenant', 'create', 'No S3', '--slug', slug, '--owner', owner], { env: cliEnv({ S3_ENDPOINT: 'http://127.0.0.1:1' }) });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`^tenantry: the bucket or Redis user of tenant '${slug}' could not be made \\(.*\\) — nothing was created; check S3_ENDPOINT`));
    expect((await admin.query(`SELECT 1 FROM tenants WHERE slug = $1`, [slug])).rowCount).toBe(0);
  });

  test("suspend ends the tenant's live Redis connections within a second and refuses AUTH; activate lets its credentials in again", { retry: 2 }, async () => {
    const created = (await cli(['tenant', 'create', 'Cut', '--slug', uniqueSlug('cut'), '--json', '--owner', owner])).json<TenantJson>();
    const credentials = await tenantCredentials(redis, created.id);
    const live = await connectAsTenant(services().endpoints.redisUrl, credentials);
    if (!('client' in live)) throw new Error(`could not connect: ${live.refused}`);
    await live.client.set(`tenant:{${created.id}}:app:state`, 'kept');

    // The command itself ends the connection: it is closed by the time the CLI exits, not later.
    const endedAt = once(live.client, 'end').then(() => Date.now());
    const suspended = await cli(['tenant', 'suspend', created.slug]);
    const exitedAt = Date.now();
    expect(suspended.code, suspended.stderr).toBe(0);
    const closed = await Promise.race([endedAt, new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), 1_000))]);
    expect(closed).not.toBe('open');
    expect(closed).toBeLessThanOrEqual(exitedAt);
    expect(await aclUser(redis, created.id)).toMatchObject({ on: false });
    expect(await connectAsTenant(services().endpoints.redisUrl, credentials)).toMatchObject({ refused: expect.stringMatching(/WRONGPASS/) });

    const activated = await cli(['tenant', 'activate', created.slug]);
    expect(activated.code, activated.stderr).toBe(0);
    const back = await connectAsTenant(services().endpoints.redisUrl, credentials);
    if (!('client' in back)) throw new Error(`refused after activate: ${back.refused}`);
    expect(await back.client.get(`tenant:{${created.id}}:app:state`)).toBe('kept');
    back.client.disconnect();

    // Running suspend again re-applies the state even though the status is unchanged.
    await redis.call('ACL', 'SETUSER', `tenant-${created.id}`, 'on');
    expect((await cli(['tenant', 'suspend', created.slug])).code).toBe(0);
    expect((await cli(['tenant', 'suspend', created.slug])).stdout).toContain('already suspended');
    await redis.call('ACL', 'SETUSER', `tenant-${created.id}`, 'on');
    expect((await cli(['tenant', 'suspend', created.slug])).code).toBe(0);
    expect(await aclUser(redis, created.id)).toMatchObject({ on: false });
  });
});

describe.concurrent('tenant delete at a terminal', () => {
  test('asks for the slug: a wrong answer deletes nothing, the right one deletes', async () => {
    const slug = uniqueSlug('asked');
    const created = (await cli(['tenant', 'create', 'Asked', '--slug', slug, '--json', '--owner', owner])).json<TenantJson>();
    const prompt = `type the slug (${slug}) to delete this tenant: `;

    const wrong = await cliInTerminal(['tenant', 'delete', slug], { prompt, answer: 'something-else' });
    expect(wrong.code).toBe(1);
    expect(wrong.output).toContain(`'something-else' is not '${slug}': nothing deleted`);
    expect((await admin.query(`SELECT status FROM tenants WHERE id = $1`, [created.id])).rows[0].status).toBe('active');

    const right = await cliInTerminal(['tenant', 'delete', slug, '--purge-data'], { prompt, answer: slug });
    expect(right.code, right.output).toBe(0);
    expect(right.output).toContain(`purged tenant ${slug} (${created.id})`);
    // On a terminal, the purge shows progress bars.
    expect(right.output).toContain(`purging ${slug}: rows [`);
    expect((await admin.query(`SELECT 1 FROM tenants WHERE id = $1`, [created.id])).rowCount).toBe(0);
  });
});

describe.concurrent('tenant create: an owner always', () => {
  test('refuses to create a tenant without --owner (usage error, nothing written)', async () => {
    const slug = uniqueSlug('ownerless');
    const refused = await cli(['tenant', 'create', 'Ownerless', '--slug', slug]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("required option '--owner <user>' not specified");
    expect((await admin.query(`SELECT 1 FROM tenants WHERE slug = $1`, [slug])).rowCount).toBe(0);
  });

  test('an email without an account is mailed an owner invitation; accepting it makes them the owner', async () => {
    const sink = new MailSink();
    await sink.start();
    try {
      const env = cliEnv({ SMTP_URL: `smtp://127.0.0.1:${sink.port}`, PUBLIC_URL: 'https://app.tenantry.test/' });
      const invitee = `Future.Owner-${hex(4)}@Example.test`;
      const slug = uniqueSlug('invited-owner');
      const created = await cli(['tenant', 'create', 'Invited', '--slug', slug, '--owner', invitee, '--json'], { env });
      expect(created.code, created.stderr).toBe(0);
      const body = created.json<TenantJson & { owner_invitation: { email: string } }>();
      expect(body.owner_user_id).toBeNull();
      expect(body.owner_invitation.email).toBe(invitee.toLowerCase());

      const mail = await sink.waitFor(invitee.toLowerCase(), /invited to Invited/);
      expect(mail.text).toMatch(/https:\/\/app\.tenantry\.test\/invitations\/accept\?token=/);
      const token = MailSink.token(mail);
      const { rows: invitations } = await admin.query<{ role: string; status: string; token_hash: string }>(
        `SELECT role, status, token_hash FROM tenant_invitations WHERE tenant_id = $1`,
        [body.id],
      );
      expect(invitations).toEqual([{ role: 'owner', status: 'pending', token_hash: createHash('sha256').update(token).digest('hex') }]);
      expect((await admin.query(`SELECT 1 FROM tenant_members WHERE tenant_id = $1`, [body.id])).rowCount).toBe(0);

      // The invitee signs up and accepts, as the auth service would.
      const { rows: users } = await admin.query<{ id: string }>(
        `INSERT INTO users (email, email_verified_at) VALUES ($1, now()) RETURNING id`,
        [invitee.toLowerCase()],
      );
      const service = poolAs('app_service', 1);
      try {
        const accepted = await service.query('SELECT * FROM app.accept_invitation($1, $2)', [createHash('sha256').update(token).digest('hex'), users[0]!.id]);
        expect(accepted.rows[0]).toEqual({ tenant_id: body.id, role: 'owner' });
      } finally {
        await service.end();
      }
    } finally {
      await sink.stop();
    }
  });

  test('a mail that cannot be sent leaves no tenant behind', async () => {
    const env = cliEnv({ SMTP_URL: 'smtp://127.0.0.1:1', PUBLIC_URL: 'https://app.tenantry.test/' });
    const slug = uniqueSlug('unmailed');
    const refused = await cli(['tenant', 'create', 'Unmailed', '--slug', slug, '--owner', `nobody-${hex(4)}@example.test`], { env });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^tenantry: the owner invitation to nobody-[0-9a-f]+@example\.test could not be mailed \(.*\) — nothing was created; check SMTP_URL\n$/);
    expect((await admin.query(`SELECT 1 FROM tenants WHERE slug = $1`, [slug])).rowCount).toBe(0);

    const unconfigured = await cli(['tenant', 'create', 'Unmailed', '--slug', slug, '--owner', `nobody-${hex(4)}@example.test`]);
    expect(unconfigured.code).toBe(1);
    expect(unconfigured.stderr).toContain('SMTP_URL is not set');
    expect((await admin.query(`SELECT 1 FROM tenants WHERE slug = $1`, [slug])).rowCount).toBe(0);
  });
});

describe.concurrent('tenant lifecycle: deleted is deleted until restored', () => {
  async function deletedTenant(label: string): Promise<TenantJson> {
    const slug = uniqueSlug(label);
    const created = await cli(['tenant', 'create', label, '--slug', slug, '--owner', owner]);
    expect(created.code, created.stderr).toBe(0);
    const deleted = await cli(['tenant', 'delete', slug, '--yes', '--json']);
    expect(deleted.code, deleted.stderr).toBe(0);
    return deleted.json<TenantJson>();
  }

  test('suspend and activate of a soft-deleted tenant are refused and keep it on the purge list', async () => {
    const tenant = await deletedTenant('suspend-deleted');
    const [suspended, activated] = await Promise.all([
      cli(['tenant', 'suspend', tenant.slug, '--reason', 'oops']),
      cli(['tenant', 'activate', tenant.slug]),
    ]);
    for (const refused of [suspended, activated]) {
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`tenant ${tenant.slug} is deleted`);
      expect(refused.stderr).toContain('tenantry tenant restore');
    }
    const { rows } = await admin.query<{ status: string; purge_after: Date }>(`SELECT status, purge_after FROM tenants WHERE id = $1`, [tenant.id]);
    expect(rows[0]).toEqual({ status: 'deleted', purge_after: new Date(tenant.purge_after!) });
  });

  test('member add, setting set and setting unset on a deleted tenant are refused', async () => {
    const tenant = await deletedTenant('write-deleted');
    const newcomer = `late-${hex(4)}@example.test`;
    await admin.query(`INSERT INTO users (email) VALUES ($1)`, [newcomer]);
    const [member, setting] = await Promise.all([
      cli(['member', 'add', tenant.slug, newcomer, 'member']),
      cli(['setting', 'set', tenant.slug, 'branding.primary_color', '"#000000"']),
    ]);
    for (const refused of [member, setting]) {
      expect(refused.code, refused.stdout).toBe(1);
      expect(refused.stderr).toContain(`tenant ${tenant.slug} is deleted: its data is read-only until it is restored`);
    }
    const { rows } = await admin.query<{ members: number; settings: number }>(
      `SELECT (SELECT count(*)::int FROM tenant_members WHERE tenant_id = $1) AS members,
              (SELECT count(*)::int FROM tenant_settings WHERE tenant_id = $1) AS settings`,
      [tenant.id],
    );
    expect(rows[0]).toEqual({ members: 1, settings: 0 });
  });

  test('restore needs --reason, refuses a tenant that is not deleted, and brings a deleted one back audited', async () => {
    const tenant = await deletedTenant('restored');
    const noReason = await cli(['tenant', 'restore', tenant.slug]);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toContain("required option '--reason <text>' not specified");

    const tail = await streamTail(redis);
    const restored = await cli(['tenant', 'restore', tenant.slug, '--reason', 'deleted the wrong tenant', '--json']);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.json()).toMatchObject({ id: tenant.id, status: 'active', deleted_at: null, purge_after: null });
    expect(await purgesSince(redis, tail)).toContainEqual({ tenant_id: tenant.id, slug: tenant.slug });
    const { rows } = await admin.query<{ actor: string; reason: string }>(
      `SELECT actor, reason FROM audit_log WHERE tenant_id = $1 AND action = 'tenants.restore'`,
      [tenant.id],
    );
    expect(rows).toEqual([{ actor: `cli:${os.userInfo().username}`, reason: 'deleted the wrong tenant' }]);

    const again = await cli(['tenant', 'restore', tenant.slug, '--reason', 'twice']);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`tenantry: tenant '${tenant.slug}' is active, not deleted: there is nothing to restore\n`);
    // Writable again.
    expect((await cli(['setting', 'set', tenant.slug, 'restored', 'true'])).code).toBe(0);
  });
});
