import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { hex, uniqueSlug } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';
import { cli } from './helpers.js';

let admin: pg.Pool;
beforeAll(() => {
  admin = poolAs('platform_admin');
});
afterAll(async () => {
  await admin.end();
});

interface MemberJson {
  user_id: string;
  email: string;
  display_name: string;
  role: string;
  joined_at: string;
}

async function users(label: string, count: number): Promise<string[]> {
  const emails = Array.from({ length: count }, (_, index) => `${label}-${index}-${hex(4)}@example.test`);
  await admin.query(`INSERT INTO users (email, display_name) SELECT e, 'User' FROM unnest($1::text[]) AS e`, [emails]);
  return emails;
}

describe.concurrent('user create and list', () => {
  test('creates a user with an argon2id password from stdin, lists it, refuses duplicates and bad emails', async () => {
    const email = `Ops-${hex(4)}@Example.test`;
    const created = await cli(['user', 'create', email, '--name', 'Ops Person', '--password-stdin', '--json'], { stdin: 's3cret pass\n' });
    expect(created.code, created.stderr).toBe(0);
    const user = created.json<Record<string, unknown>>();
    // Stored normalised: the mixed-case address given comes back lower-case.
    expect(user).toMatchObject({ email: email.toLowerCase(), display_name: 'Ops Person', has_password: true, is_staff: false });
    expect(Object.keys(user).sort()).toEqual(
      ['created_at', 'disabled_at', 'display_name', 'email', 'email_verified_at', 'has_password', 'id', 'is_staff'].sort(),
    );
    const { rows } = await admin.query<{ password_hash: string }>(`SELECT password_hash FROM users WHERE id = $1`, [user.id]);
    expect(rows[0]!.password_hash).toMatch(/^\$argon2id\$/);
    const argon2 = await import('argon2');
    expect(await argon2.verify(rows[0]!.password_hash, 's3cret pass')).toBe(true);

    const [list, human, duplicate, malformed, emptyPassword] = await Promise.all([
      cli(['user', 'list', '--email', email.toLowerCase(), '--json']),
      cli(['user', 'list', '--email', email]),
      cli(['user', 'create', email.toLowerCase()]),
      cli(['user', 'create', 'not-an-email']),
      cli(['user', 'create', `empty-${hex(4)}@example.test`, '--password-stdin']),
    ]);
    expect(list.json<Array<{ id: string }>>().map((row) => row.id)).toEqual([user.id]);
    expect(human.stdout).toMatch(new RegExp(`${email.toLowerCase()}\\s+Ops Person\\s+yes`));
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toContain(`a user with email '${email.toLowerCase()}' already exists`);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toContain("'not-an-email' is not an email address");
    expect(emptyPassword.code).toBe(1);
    expect(emptyPassword.stderr).toContain('no password on stdin');
  });
});

describe.concurrent('members', () => {
  test('add, list, update and remove, by email or id, with the database keeping the last owner', async () => {
    const slug = uniqueSlug('members');
    const [ownerEmail, adminEmail] = await users('m', 2);
    expect((await cli(['tenant', 'create', 'Members', '--slug', slug, '--owner', ownerEmail!])).code).toBe(0);

    const added = await cli(['member', 'add', slug, adminEmail!, 'admin', '--json']);
    expect(added.code, added.stderr).toBe(0);
    const adminMember = added.json<MemberJson>();
    expect(adminMember).toMatchObject({ email: adminEmail, role: 'admin' });

    const [list, human, again, lastOwnerDemote, lastOwnerRemove, unknownUser] = await Promise.all([
      cli(['member', 'list', slug, '--json']),
      cli(['member', 'list', slug]),
      cli(['member', 'add', slug, adminEmail!]),
      cli(['member', 'update', slug, ownerEmail!, 'member']),
      cli(['member', 'remove', slug, ownerEmail!]),
      cli(['member', 'add', slug, `ghost-${hex(4)}@example.test`]),
    ]);
    const removed = await cli(['member', 'remove', slug, adminMember.user_id]);
    expect(removed.code, removed.stderr).toBe(0);
    const notMember = await cli(['member', 'update', slug, adminMember.user_id, 'guest']);
    const members = list.json<MemberJson[]>();
    expect(members.map((member) => [member.email, member.role])).toEqual(
      expect.arrayContaining([
        [ownerEmail, 'owner'],
        [adminEmail, 'admin'],
      ]),
    );
    for (const member of members) expect(Object.keys(member).sort()).toEqual(['display_name', 'email', 'joined_at', 'role', 'user_id']);
    expect(human.stdout.split('\n')[0]).toMatch(/^EMAIL\s+NAME\s+ROLE\s+JOINED\s+USER ID$/);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('is already a member');
    for (const refused of [lastOwnerDemote, lastOwnerRemove]) {
      expect(refused.code).toBe(1);
      expect(refused.stderr).toBe(`tenantry: tenant '${slug}' must keep at least one owner — make another member an owner first\n`);
    }
    expect(unknownUser.code).toBe(1);
    expect(unknownUser.stderr).toMatch(/user 'ghost-.*' not found — create it with `tenantry user create/);
    expect(notMember.code).toBe(1);
    expect(notMember.stderr).toContain(`is not a member of tenant '${slug}'`);

    // Ownership moves when another owner exists first.
    expect((await cli(['member', 'add', slug, adminEmail!, 'owner'])).code).toBe(0);
    const demoted = await cli(['member', 'update', slug, ownerEmail!, 'member', '--json']);
    expect(demoted.code, demoted.stderr).toBe(0);
    expect(demoted.json<MemberJson>().role).toBe('member');

    const audit = await admin.query<{ action: string }>(
      `SELECT a.action FROM audit_log a JOIN tenants t ON t.id = a.tenant_id WHERE t.slug = $1 AND a.target_type = 'tenant_members' ORDER BY a.id`,
      [slug],
    );
    expect(audit.rows.map((row) => row.action)).toEqual(
      expect.arrayContaining(['tenant_members.insert', 'tenant_members.delete', 'tenant_members.update']),
    );
  });

  test('the user limit of the plan is the database’s', async () => {
    const slug = uniqueSlug('limit');
    const emails = await users('l', 4);
    // The free plan allows 3 users.
    expect((await cli(['tenant', 'create', 'Limited', '--slug', slug, '--owner', emails[0]!])).code).toBe(0);
    for (const email of emails.slice(1, 3)) expect((await cli(['member', 'add', slug, email])).code).toBe(0);
    const over = await cli(['member', 'add', slug, emails[3]!, 'guest']);
    expect(over.code).toBe(1);
    expect(over.stderr).toBe(
      `tenantry: tenant '${slug}' has reached its limit of 3 users — remove a member or move the tenant to a plan with more users\n`,
    );
    const list = await cli(['member', 'list', slug, '--json']);
    expect(list.json<MemberJson[]>()).toHaveLength(3);
  });
});
