/**
 * Privilege escalation through the membership tables, attacked where every writer passes:
 * the database. Hasura writes straight to tenant_members as hasura_app, with `hasura.user`
 * set by `SET LOCAL` exactly as its engine does; the services write as app_service with the
 * same JSON. Nobody grants a role or a permission above what they hold, nobody raises their
 * own, and the legitimate paths (an owner managing, an admin adding a guest, ownership
 * transfer, leaving, signup, accepting an invitation, the audited CLI) still pass.
 */
import pg from 'pg';
import { afterAll, describe, expect, test } from 'vitest';
import { createUsers, dbError, hex, seedTenant, type DbError, type SeededTenant } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';

const WRITERS = ['hasura_app', 'app_service'] as const;
type Writer = (typeof WRITERS)[number];
type Role = 'owner' | 'admin' | 'member' | 'guest';

const admin = poolAs('platform_admin');
const pools: Record<Writer, pg.Pool> = { hasura_app: poolAs('hasura_app'), app_service: poolAs('app_service') };

afterAll(async () => {
  await Promise.all([admin.end(), pools.hasura_app.end(), pools.app_service.end()]);
});

/** The role name each writer puts in `hasura.user`: Hasura's role for an admin is tenant_admin. */
const sessionRole = (writer: Writer, role: Role) => (writer === 'hasura_app' && role === 'admin' ? 'tenant_admin' : role);

interface Actor {
  tenantId: string;
  userId?: string;
  role: Role;
  apiKeyId?: string;
}

function sessionJson(writer: Writer, actor: Actor): string {
  return JSON.stringify({
    'x-hasura-role': sessionRole(writer, actor.role),
    'x-hasura-tenant-id': actor.tenantId,
    ...(actor.userId ? { 'x-hasura-user-id': actor.userId } : {}),
    ...(actor.apiKeyId ? { 'x-hasura-api-key-id': actor.apiKeyId } : {}),
  });
}

/**
 * One committed transaction as `writer`, the session set the way that writer's client sets
 * it (Hasura: `SET LOCAL "hasura.user" = '<json>'`, verbatim from its engine; the services:
 * set_config(…, true)). Committed, so the deferred last-owner check runs too.
 */
async function writeAs(writer: Writer, actor: Actor, statements: Array<[string, unknown[]]>): Promise<DbError | undefined> {
  const client = await pools[writer].connect();
  try {
    await client.query('BEGIN');
    const json = sessionJson(writer, actor);
    if (writer === 'hasura_app') await client.query(`SET LOCAL "hasura.user" = ${pg.escapeLiteral(json)}`);
    else await client.query("SELECT set_config('hasura.user', $1, true)", [json]);
    for (const [sql, params] of statements) await client.query(sql, params);
    return await dbError(client.query('COMMIT'));
  } catch (error) {
    return error as DbError;
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

const write = (writer: Writer, actor: Actor, sql: string, params: unknown[]) => writeAs(writer, actor, [[sql, params]]);

const SET_ROLE = 'UPDATE tenant_members SET role = $3 WHERE tenant_id = $1 AND user_id = $2';
const SET_PERMISSIONS = 'UPDATE tenant_members SET permissions = $3 WHERE tenant_id = $1 AND user_id = $2';
const INSERT_MEMBER = 'INSERT INTO tenant_members (tenant_id, user_id, role, permissions) VALUES ($1, $2, $3, $4)';
const DELETE_MEMBER = 'DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2';
const INSERT_INVITATION = 'INSERT INTO tenant_invitations (tenant_id, email, role, token_hash) VALUES ($1, $2, $3, $4)';

/** A seeded tenant (owner, member) plus an admin, a member holding the extra grant users:write, and a guest. */
interface Team extends SeededTenant {
  adminUserId: string;
  deputyUserId: string;
  guestUserId: string;
  outsiderUserId: string;
}

async function team(label: string): Promise<Team> {
  const seeded = await seedTenant(admin, label);
  const [adminUserId, deputyUserId, guestUserId, outsiderUserId] = await createUsers(admin, `${label}-u`, 4);
  await admin.query(
    `INSERT INTO tenant_members (tenant_id, user_id, role, permissions)
     VALUES ($1, $2, 'admin', '{}'), ($1, $3, 'member', '{users:write}'), ($1, $4, 'guest', '{}')`,
    [seeded.tenantId, adminUserId, deputyUserId, guestUserId],
  );
  return { ...seeded, adminUserId: adminUserId!, deputyUserId: deputyUserId!, guestUserId: guestUserId!, outsiderUserId: outsiderUserId! };
}

async function membership(tenantId: string, userId: string): Promise<{ role: Role; permissions: string[] } | null> {
  const { rows } = await admin.query<{ role: Role; permissions: string[] }>(
    'SELECT role, permissions FROM tenant_members WHERE tenant_id = $1 AND user_id = $2',
    [tenantId, userId],
  );
  return rows[0] ?? null;
}

function expectRefused(error: DbError | undefined, constraint = 'tenant_members_grant_bounds'): void {
  expect(error, 'expected the database to refuse').toBeDefined();
  expect({ code: error!.code, constraint: error!.constraint }, error!.message).toEqual({ code: '42501', constraint });
}

function expectAccepted(error: DbError | undefined): void {
  expect(error?.message).toBeUndefined();
}

describe.each(WRITERS)('attacks as %s, session set as its client sets it', (writer) => {
  test('a tenant admin writes {*} into their own permissions: refused', async () => {
    const t = await team('pe-star');
    const error = await write(writer, { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' }, SET_PERMISSIONS, [t.tenantId, t.adminUserId, ['*']]);
    expectRefused(error);
    expect(error!.message).toMatch(/your own permissions/);
    expect(await membership(t.tenantId, t.adminUserId)).toEqual({ role: 'admin', permissions: [] });
  });

  test('a tenant admin adds a grant they already hold to their own row: still refused', async () => {
    const t = await team('pe-selfgrant');
    expectRefused(await write(writer, { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' }, SET_PERMISSIONS, [t.tenantId, t.adminUserId, ['users:read']]));
    expect(await membership(t.tenantId, t.adminUserId)).toEqual({ role: 'admin', permissions: [] });
  });

  test('a tenant admin makes themselves owner: refused', async () => {
    const t = await team('pe-selfowner');
    const error = await write(writer, { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' }, SET_ROLE, [t.tenantId, t.adminUserId, 'owner']);
    expectRefused(error);
    expect(error!.message).toMatch(/your own role/);
    expect((await membership(t.tenantId, t.adminUserId))!.role).toBe('admin');
  });

  test('a member holding the extra grant users:write promotes herself to admin: refused', async () => {
    const t = await team('pe-deputy-self');
    expectRefused(await write(writer, { tenantId: t.tenantId, userId: t.deputyUserId, role: 'member' }, SET_ROLE, [t.tenantId, t.deputyUserId, 'admin']));
    expect((await membership(t.tenantId, t.deputyUserId))!.role).toBe('member');
  });

  test('a member holding users:write promotes another member to admin: refused', async () => {
    const t = await team('pe-deputy-other');
    const error = await write(writer, { tenantId: t.tenantId, userId: t.deputyUserId, role: 'member' }, SET_ROLE, [t.tenantId, t.memberUserId, 'admin']);
    expectRefused(error);
    expect(error!.message).toMatch(/above your own/);
    expect((await membership(t.tenantId, t.memberUserId))!.role).toBe('member');
  });

  test('a member holding users:write grants another member users:* or *: refused', async () => {
    const t = await team('pe-deputy-grant');
    for (const permissions of [['users:*'], ['*'], ['billing:write']]) {
      expectRefused(await write(writer, { tenantId: t.tenantId, userId: t.deputyUserId, role: 'member' }, SET_PERMISSIONS, [t.tenantId, t.memberUserId, permissions]));
    }
    expect((await membership(t.tenantId, t.memberUserId))!.permissions).toEqual([]);
  });

  test('a tenant admin demotes an owner: refused; deletes an owner: refused', async () => {
    const t = await team('pe-owner');
    const asAdmin: Actor = { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' };
    expectRefused(await write(writer, asAdmin, SET_ROLE, [t.tenantId, t.ownerUserId, 'guest']));
    // A second owner, so the last-owner rule cannot be what refuses.
    await admin.query("UPDATE tenant_members SET role = 'owner' WHERE tenant_id = $1 AND user_id = $2", [t.tenantId, t.memberUserId]);
    expectRefused(await write(writer, asAdmin, DELETE_MEMBER, [t.tenantId, t.ownerUserId]));
    expect((await membership(t.tenantId, t.ownerUserId))!.role).toBe('owner');
  });

  test('a tenant admin inserts a new owner, or an admin holding *: refused', async () => {
    const t = await team('pe-insert');
    const asAdmin: Actor = { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' };
    expectRefused(await write(writer, asAdmin, INSERT_MEMBER, [t.tenantId, t.outsiderUserId, 'owner', []]));
    expectRefused(await write(writer, asAdmin, INSERT_MEMBER, [t.tenantId, t.outsiderUserId, 'admin', ['*']]));
    expect(await membership(t.tenantId, t.outsiderUserId)).toBeNull();
  });

  test('a member without users:write changes, adds or removes someone else: refused', async () => {
    const t = await team('pe-plain');
    const asMember: Actor = { tenantId: t.tenantId, userId: t.memberUserId, role: 'member' };
    expectRefused(await write(writer, asMember, SET_ROLE, [t.tenantId, t.guestUserId, 'member']));
    expectRefused(await write(writer, asMember, INSERT_MEMBER, [t.tenantId, t.outsiderUserId, 'guest', []]));
    expectRefused(await write(writer, asMember, DELETE_MEMBER, [t.tenantId, t.guestUserId]));
    expect((await membership(t.tenantId, t.guestUserId))!.role).toBe('guest');
  });

  test('someone who is no member of the tenant adds themselves (as an admin): refused', async () => {
    const t = await team('pe-outsider');
    const error = await write(writer, { tenantId: t.tenantId, userId: t.outsiderUserId, role: 'admin' }, INSERT_MEMBER, [t.tenantId, t.outsiderUserId, 'admin', []]);
    expectRefused(error);
    expect(error!.message).toMatch(/not a member/);
    expect(await membership(t.tenantId, t.outsiderUserId)).toBeNull();
  });

  test('a session that names no user changes nothing', async () => {
    const t = await team('pe-nouser');
    expectRefused(await write(writer, { tenantId: t.tenantId, role: 'owner' }, INSERT_MEMBER, [t.tenantId, t.outsiderUserId, 'member', []]));
    expectRefused(await write(writer, { tenantId: t.tenantId, role: 'owner' }, SET_ROLE, [t.tenantId, t.memberUserId, 'admin']));
  });

  test("an API key's session changes no membership, whoever created the key", async () => {
    const t = await team('pe-key');
    const asKey: Actor = { tenantId: t.tenantId, userId: t.ownerUserId, role: 'admin', apiKeyId: t.apiKeyId };
    const error = await write(writer, asKey, SET_PERMISSIONS, [t.tenantId, t.memberUserId, ['*']]);
    expectRefused(error);
    expect(error!.message).toMatch(/API key/);
  });

  test('a membership never moves to another user or tenant', async () => {
    const t = await team('pe-move');
    const asOwner: Actor = { tenantId: t.tenantId, userId: t.ownerUserId, role: 'owner' };
    expectRefused(await write(writer, asOwner, 'UPDATE tenant_members SET user_id = $3 WHERE tenant_id = $1 AND user_id = $2', [t.tenantId, t.guestUserId, t.outsiderUserId]));
    const other = await seedTenant(admin, 'pe-move-b');
    // Row-level security refuses the tenant move for both roles (the same 42501 as every cross-tenant write).
    const moved = await write(writer, asOwner, 'UPDATE tenant_members SET tenant_id = $3 WHERE tenant_id = $1 AND user_id = $2', [t.tenantId, t.guestUserId, other.tenantId]);
    expect(moved?.code, moved?.message).toBe('42501');
    expect(await membership(t.tenantId, t.guestUserId)).toMatchObject({ role: 'guest' });
    expect(await membership(t.tenantId, t.outsiderUserId)).toBeNull();
  });
});

describe('invitation attacks (app_service: Hasura may not insert invitations)', () => {
  const invite = (t: Team, userId: string, role: Role, invitedRole: Role) =>
    write('app_service', { tenantId: t.tenantId, userId, role }, INSERT_INVITATION, [t.tenantId, `pe-${hex()}@example.test`, invitedRole, `tok-${hex(12)}`]);

  test('a member holding users:write invites an admin: refused; an admin invites an owner: refused', async () => {
    const t = await team('pe-inv');
    expectRefused(await invite(t, t.deputyUserId, 'member', 'admin'), 'tenant_invitations_grant_bounds');
    expectRefused(await invite(t, t.adminUserId, 'admin', 'owner'), 'tenant_invitations_grant_bounds');
    expectRefused(await invite(t, t.memberUserId, 'member', 'guest'), 'tenant_invitations_grant_bounds');
  });

  test("an admin raises a pending invitation's role to owner: refused", async () => {
    const t = await team('pe-inv-raise');
    expectRefused(
      await write('app_service', { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' }, 'UPDATE tenant_invitations SET role = $2 WHERE id = $1', [t.invitationId, 'owner']),
      'tenant_invitations_grant_bounds',
    );
    const { rows } = await admin.query('SELECT role FROM tenant_invitations WHERE id = $1', [t.invitationId]);
    expect(rows).toEqual([{ role: 'member' }]);
  });

  test("an admin redirects the owner's pending owner invitation to their own address: refused", async () => {
    const t = await team('pe-inv-redirect');
    const { rows } = await admin.query<{ id: string }>(
      "INSERT INTO tenant_invitations (tenant_id, email, role, token_hash, invited_by) VALUES ($1, $2, 'owner', $3, $4) RETURNING id",
      [t.tenantId, `co-owner-${hex()}@example.test`, `tok-${hex(12)}`, t.ownerUserId],
    );
    const redirected = `admin-alias-${hex()}@example.test`;
    expectRefused(
      await write('app_service', { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' }, 'UPDATE tenant_invitations SET email = $2 WHERE id = $1', [rows[0]!.id, redirected]),
      'tenant_invitations_grant_bounds',
    );
    const after = await admin.query('SELECT email FROM tenant_invitations WHERE id = $1', [rows[0]!.id]);
    expect(after.rows).not.toEqual([{ email: redirected }]);
  });

  test('an admin invites a member, and a member holding users:write a guest', async () => {
    const t = await team('pe-inv-ok');
    expectAccepted(await invite(t, t.adminUserId, 'admin', 'member'));
    expectAccepted(await invite(t, t.deputyUserId, 'member', 'guest'));
    expectAccepted(await invite(t, t.ownerUserId, 'owner', 'owner'));
  });
});

describe.each(WRITERS)('legitimate paths as %s', (writer) => {
  test('the owner promotes a member to admin and grants an extra permission', async () => {
    const t = await team('pe-ok-promote');
    const asOwner: Actor = { tenantId: t.tenantId, userId: t.ownerUserId, role: 'owner' };
    expectAccepted(await write(writer, asOwner, 'UPDATE tenant_members SET role = $3, permissions = $4 WHERE tenant_id = $1 AND user_id = $2', [t.tenantId, t.memberUserId, 'admin', ['billing:read']]));
    expect(await membership(t.tenantId, t.memberUserId)).toEqual({ role: 'admin', permissions: ['billing:read'] });
  });

  test('an admin adds a guest, grants what they hold, demotes a member and removes a guest', async () => {
    const t = await team('pe-ok-admin');
    const asAdmin: Actor = { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' };
    expectAccepted(await write(writer, asAdmin, INSERT_MEMBER, [t.tenantId, t.outsiderUserId, 'guest', ['projects:write']]));
    expect(await membership(t.tenantId, t.outsiderUserId)).toEqual({ role: 'guest', permissions: ['projects:write'] });
    expectAccepted(await write(writer, asAdmin, SET_ROLE, [t.tenantId, t.memberUserId, 'guest']));
    expectAccepted(await write(writer, asAdmin, DELETE_MEMBER, [t.tenantId, t.guestUserId]));
    expect(await membership(t.tenantId, t.guestUserId)).toBeNull();
  });

  test('a member holding users:write demotes another member to guest; anyone drops their own extras', async () => {
    const t = await team('pe-ok-deputy');
    expectAccepted(await write(writer, { tenantId: t.tenantId, userId: t.deputyUserId, role: 'member' }, SET_ROLE, [t.tenantId, t.memberUserId, 'guest']));
    expectAccepted(await write(writer, { tenantId: t.tenantId, userId: t.deputyUserId, role: 'member' }, SET_PERMISSIONS, [t.tenantId, t.deputyUserId, []]));
    expect(await membership(t.tenantId, t.deputyUserId)).toEqual({ role: 'member', permissions: [] });
  });

  test('the owner transfers ownership and demotes themselves in one transaction', async () => {
    const t = await team('pe-ok-transfer');
    const error = await writeAs(writer, { tenantId: t.tenantId, userId: t.ownerUserId, role: 'owner' }, [
      [SET_ROLE, [t.tenantId, t.memberUserId, 'owner']],
      [SET_ROLE, [t.tenantId, t.ownerUserId, 'admin']],
    ]);
    expectAccepted(error);
    expect((await membership(t.tenantId, t.memberUserId))!.role).toBe('owner');
    expect((await membership(t.tenantId, t.ownerUserId))!.role).toBe('admin');
  });

  test('an admin steps down to member; a member leaves', async () => {
    const t = await team('pe-ok-leave');
    expectAccepted(await write(writer, { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' }, SET_ROLE, [t.tenantId, t.adminUserId, 'member']));
    expectAccepted(await write(writer, { tenantId: t.tenantId, userId: t.memberUserId, role: 'member' }, DELETE_MEMBER, [t.tenantId, t.memberUserId]));
    expect((await membership(t.tenantId, t.adminUserId))!.role).toBe('member');
    expect(await membership(t.tenantId, t.memberUserId)).toBeNull();
  });
});

describe('the paths that need no acting member', () => {
  test('platform_admin (the audited CLI) does anything the other rules allow', async () => {
    const t = await team('pe-ok-cli');
    await admin.query("UPDATE tenant_members SET role = 'owner', permissions = '{*}' WHERE tenant_id = $1 AND user_id = $2", [t.tenantId, t.guestUserId]);
    await admin.query('DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2', [t.tenantId, t.ownerUserId]);
    await admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'owner')", [t.tenantId, t.outsiderUserId]);
    expect(await membership(t.tenantId, t.guestUserId)).toEqual({ role: 'owner', permissions: ['*'] });
    expect(await membership(t.tenantId, t.outsiderUserId)).toMatchObject({ role: 'owner' });
  });

  test('signup: app.create_tenant_with_owner makes a new tenant with its owner; hasura_app may not call it', async () => {
    const [userId] = await createUsers(admin, 'pe-signup', 1);
    const tenantId = crypto.randomUUID();
    const slug = `pe-signup-${hex()}`;
    const error = await write('app_service', { tenantId, userId, role: 'owner' }, 'SELECT app.create_tenant_with_owner($1, $2, $3, $4)', [tenantId, slug, 'Signup', userId]);
    expectAccepted(error);
    expect(await membership(tenantId, userId!)).toEqual({ role: 'owner', permissions: [] });
    const { rows } = await admin.query('SELECT slug, owner_user_id FROM tenants WHERE id = $1', [tenantId]);
    expect(rows).toEqual([{ slug, owner_user_id: userId }]);

    // It never hands out an existing tenant.
    const [intruder] = await createUsers(admin, 'pe-signup-x', 1);
    const again = await write('app_service', { tenantId, userId: intruder, role: 'owner' }, 'SELECT app.create_tenant_with_owner($1, $2, $3, $4)', [tenantId, `pe-x-${hex()}`, 'Again', intruder]);
    expect(again?.code).toBe('23505');
    expect(await membership(tenantId, intruder!)).toBeNull();

    const denied = await write('hasura_app', { tenantId, userId, role: 'owner' }, 'SELECT app.create_tenant_with_owner($1, $2, $3, $4)', [crypto.randomUUID(), `pe-h-${hex()}`, 'Hasura', userId]);
    expect(denied?.code).toBe('42501');
    expect(denied?.message).toMatch(/permission denied for function/);
  });

  test('app.accept_invitation joins with exactly the role the invitation names, once, for its email only', async () => {
    const t = await team('pe-accept');
    const email = `pe-accept-${hex()}@example.test`;
    const tokenHash = `tok-${hex(12)}`;
    await admin.query("INSERT INTO tenant_invitations (tenant_id, email, role, token_hash, invited_by) VALUES ($1, $2, 'guest', $3, $4)", [t.tenantId, email, tokenHash, t.ownerUserId]);
    const { rows: created } = await admin.query<{ id: string }>("INSERT INTO users (email) VALUES ($1), ($2) RETURNING id", [email, `pe-other-${hex()}@example.test`]);
    const [invitee, stranger] = created.map((row) => row.id);
    const accept = (userId: string) =>
      write('app_service', { tenantId: t.tenantId, userId, role: 'guest' }, 'SELECT * FROM app.accept_invitation($1, $2)', [tokenHash, userId]);

    expectRefused(await accept(stranger!), 'tenant_invitations_email');
    expectAccepted(await accept(invitee!));
    expect(await membership(t.tenantId, invitee!)).toEqual({ role: 'guest', permissions: [] });
    const again = await accept(invitee!);
    expect({ code: again?.code, constraint: again?.constraint }).toEqual({ code: '23514', constraint: 'tenant_invitations_pending' });
    const unknown = await write('app_service', { tenantId: t.tenantId, userId: invitee, role: 'guest' }, 'SELECT * FROM app.accept_invitation($1, $2)', [`tok-${hex(12)}`, invitee]);
    expect({ code: unknown?.code, constraint: unknown?.constraint }).toEqual({ code: 'P0002', constraint: 'tenant_invitations_token' });
    // The invitee, now a guest, cannot take a higher role by inserting or updating themselves.
    expectRefused(await write('app_service', { tenantId: t.tenantId, userId: invitee, role: 'guest' }, SET_ROLE, [t.tenantId, invitee, 'admin']));
  });

  test('deleting an account (app_service) removes its memberships through the cascade', async () => {
    const t = await team('pe-cascade');
    expectAccepted(await write('app_service', { tenantId: t.tenantId, userId: t.guestUserId, role: 'guest' }, 'DELETE FROM users WHERE id = $1', [t.guestUserId]));
    expect(await membership(t.tenantId, t.guestUserId)).toBeNull();
  });

  test('the new definer functions: owned by app_definer, pg_temp last, no PUBLIC execute', async () => {
    const { rows } = await admin.query<{ name: string; owner: string; config: string[] | null; public_execute: boolean }>(
      `SELECT p.proname AS name, pg_get_userbyid(p.proowner) AS owner, p.proconfig AS config,
              has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
         FROM pg_proc p
        WHERE p.pronamespace = 'app'::regnamespace AND p.proname IN ('session_member', 'create_tenant_with_owner', 'accept_invitation')`,
    );
    expect(rows.map((row) => row.name).sort()).toEqual(['accept_invitation', 'create_tenant_with_owner', 'session_member']);
    for (const row of rows) {
      expect(row.owner, row.name).toBe('app_definer');
      expect(row.config, row.name).toContain('search_path=pg_catalog, public, pg_temp');
      expect(row.public_execute, row.name).toBe(false);
    }
  });
});

/**
 * A NULL element once slipped through both the CHECK (bool_and skips NULLs) and the trigger
 * (`p <> ALL (…NULL…)` is NULL, so nothing counted as added): the second UPDATE then wrote
 * {*}. Both steps are attacked, on the writer's own row and on someone else's.
 */
describe.each(WRITERS)('NULL permission elements as %s', (writer) => {
  const APPEND_NULL = 'UPDATE tenant_members SET permissions = array_append(permissions, NULL) WHERE tenant_id = $1 AND user_id = $2';

  test('an admin appends NULL to their own extras, then writes {*}: both refused', async () => {
    const t = await team('pe-null-self');
    await admin.query("UPDATE tenant_members SET permissions = '{projects:read}' WHERE tenant_id = $1 AND user_id = $2", [t.tenantId, t.adminUserId]);
    const asAdmin: Actor = { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' };
    const appended = await write(writer, asAdmin, APPEND_NULL, [t.tenantId, t.adminUserId]);
    expect(appended?.code, 'appending NULL must be refused').toBeDefined();
    const escalated = await write(writer, asAdmin, SET_PERMISSIONS, [t.tenantId, t.adminUserId, ['*']]);
    expectRefused(escalated);
    expect(await membership(t.tenantId, t.adminUserId)).toEqual({ role: 'admin', permissions: ['projects:read'] });
  });

  test("an admin appends NULL to a member's extras, then writes {*} there: both refused", async () => {
    const t = await team('pe-null-other');
    await admin.query("UPDATE tenant_members SET permissions = '{projects:read}' WHERE tenant_id = $1 AND user_id = $2", [t.tenantId, t.memberUserId]);
    const asAdmin: Actor = { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' };
    expect((await write(writer, asAdmin, APPEND_NULL, [t.tenantId, t.memberUserId]))?.code).toBeDefined();
    expectRefused(await write(writer, asAdmin, SET_PERMISSIONS, [t.tenantId, t.memberUserId, ['*']]));
    expect(await membership(t.tenantId, t.memberUserId)).toEqual({ role: 'member', permissions: ['projects:read'] });
  });

  test('a guest appends NULL to their own row, then writes {*}: both refused', async () => {
    const t = await team('pe-null-guest');
    // With extras to spare: on an empty list `p <> ALL ('{}')` is true, and NULL counted as added.
    await admin.query("UPDATE tenant_members SET permissions = '{billing:read}' WHERE tenant_id = $1 AND user_id = $2", [t.tenantId, t.guestUserId]);
    const asGuest: Actor = { tenantId: t.tenantId, userId: t.guestUserId, role: 'guest' };
    expect((await write(writer, asGuest, APPEND_NULL, [t.tenantId, t.guestUserId]))?.code).toBeDefined();
    expectRefused(await write(writer, asGuest, SET_PERMISSIONS, [t.tenantId, t.guestUserId, ['*']]));
    expect(await membership(t.tenantId, t.guestUserId)).toEqual({ role: 'guest', permissions: ['billing:read'] });
  });
});

describe('NULL permission elements in the schema', () => {
  test('the CHECK refuses a NULL element for every writer, the platform admin included', async () => {
    const t = await team('pe-null-check');
    const error = await dbError(admin.query("UPDATE tenant_members SET permissions = '{billing:read,NULL}' WHERE tenant_id = $1 AND user_id = $2", [t.tenantId, t.memberUserId]));
    expect({ code: error?.code, constraint: error?.constraint }).toEqual({ code: '23514', constraint: 'tenant_members_permissions_valid' });
    const { rows } = await admin.query<{ valid: boolean; nested: boolean; empty: boolean }>(
      "SELECT app.is_valid_permission_list('{NULL}') AS valid, app.is_valid_permission_list('{{projects:read}}') AS nested, app.is_valid_permission_list('{}') AS empty",
    );
    expect(rows).toEqual([{ valid: false, nested: false, empty: true }]);
  });
});

/**
 * Every write to an invitation hands out or takes away its role: re-opening it (a new token
 * and expiry, status back to pending), revoking it and deleting it are bounded like its role.
 */
describe('writes to an owner invitation other than its role', () => {
  async function ownerInvitation(t: Team, status: 'pending' | 'revoked' = 'pending', lapsed = false): Promise<string> {
    const { rows } = await admin.query<{ id: string }>(
      `INSERT INTO tenant_invitations (tenant_id, email, role, token_hash, invited_by, status, expires_at)
       VALUES ($1, $2, 'owner', $3, $4, $5, now() + CASE WHEN $6 THEN interval '-1 hour' ELSE interval '7 days' END) RETURNING id`,
      [t.tenantId, `co-owner-${hex()}@example.test`, `tok-${hex(12)}`, t.ownerUserId, status, lapsed],
    );
    return rows[0]!.id;
  }
  const invitation = async (id: string) =>
    (await admin.query<{ status: string; token_hash: string }>('SELECT status, token_hash FROM tenant_invitations WHERE id = $1', [id])).rows[0] ?? null;
  const REOPEN = "UPDATE tenant_invitations SET status = 'pending', revoked_at = NULL, token_hash = $2, expires_at = now() + interval '7 days' WHERE id = $1";
  const RESEND = "UPDATE tenant_invitations SET token_hash = $2, expires_at = now() + interval '7 days', last_sent_at = now() WHERE id = $1";
  const REVOKE = "UPDATE tenant_invitations SET status = 'revoked', revoked_at = now() WHERE id = $1";
  const EXPIRE = "UPDATE tenant_invitations SET status = 'expired' WHERE id = $1";

  test('an admin re-opens a revoked owner invitation or re-sends a pending one with a token they know: refused', async () => {
    const t = await team('pe-inv-reopen');
    const asAdmin: Actor = { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' };
    const revoked = await ownerInvitation(t, 'revoked');
    const before = await invitation(revoked);
    expectRefused(await write('app_service', asAdmin, REOPEN, [revoked, `tok-${hex(12)}`]), 'tenant_invitations_grant_bounds');
    expect(await invitation(revoked)).toEqual(before);
    const pending = await ownerInvitation(t);
    const pendingBefore = await invitation(pending);
    expectRefused(await write('app_service', asAdmin, RESEND, [pending, `tok-${hex(12)}`]), 'tenant_invitations_grant_bounds');
    expect(await invitation(pending)).toEqual(pendingBefore);
  });

  test.each(WRITERS)('an admin revokes or deletes an owner invitation as %s: refused', async (writer) => {
    const t = await team('pe-inv-revoke');
    const id = await ownerInvitation(t);
    const asAdmin: Actor = { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' };
    // hasura_app may delete invitations (Hasura's metadata) but not update them.
    if (writer === 'app_service') expectRefused(await write(writer, asAdmin, REVOKE, [id]), 'tenant_invitations_grant_bounds');
    expectRefused(await write(writer, asAdmin, 'DELETE FROM tenant_invitations WHERE id = $1', [id]), 'tenant_invitations_grant_bounds');
    expect(await invitation(id)).toMatchObject({ status: 'pending' });
  });

  test('an admin cannot mark an owner invitation expired before it lapses, nor change anything else while expiring it', async () => {
    const t = await team('pe-inv-expire-early');
    const asAdmin: Actor = { tenantId: t.tenantId, userId: t.adminUserId, role: 'admin' };
    const live = await ownerInvitation(t);
    expectRefused(await write('app_service', asAdmin, EXPIRE, [live]), 'tenant_invitations_grant_bounds');
    const lapsed = await ownerInvitation(t, 'pending', true);
    expectRefused(
      await write('app_service', asAdmin, "UPDATE tenant_invitations SET status = 'expired', token_hash = $2 WHERE id = $1", [lapsed, `tok-${hex(12)}`]),
      'tenant_invitations_grant_bounds',
    );
    expect(await invitation(live)).toMatchObject({ status: 'pending' });
  });

  test('legitimate: any users:write member marks a lapsed invitation expired; the owner revokes, re-sends and deletes', async () => {
    const t = await team('pe-inv-owner-ok');
    const lapsed = await ownerInvitation(t, 'pending', true);
    expectAccepted(await write('app_service', { tenantId: t.tenantId, userId: t.deputyUserId, role: 'member' }, EXPIRE, [lapsed]));
    expect(await invitation(lapsed)).toMatchObject({ status: 'expired' });
    // Without users:write, not even that.
    const lapsedToo = await ownerInvitation(t, 'pending', true);
    expectRefused(await write('app_service', { tenantId: t.tenantId, userId: t.memberUserId, role: 'member' }, EXPIRE, [lapsedToo]), 'tenant_invitations_grant_bounds');

    const asOwner: Actor = { tenantId: t.tenantId, userId: t.ownerUserId, role: 'owner' };
    const id = await ownerInvitation(t);
    const token = `tok-${hex(12)}`;
    expectAccepted(await write('app_service', asOwner, RESEND, [id, token]));
    expect(await invitation(id)).toEqual({ status: 'pending', token_hash: token });
    expectAccepted(await write('app_service', asOwner, REVOKE, [id]));
    expect(await invitation(id)).toMatchObject({ status: 'revoked' });
    expectAccepted(await write('hasura_app', asOwner, 'DELETE FROM tenant_invitations WHERE id = $1', [id]));
    expect(await invitation(id)).toBeNull();
  });
});
