import { z } from 'zod';
import { emailSchema } from '../../../shared/src/email.js';
import { fail } from '../../../shared/src/errors/catalog.js';
import { ROLES } from '../../../shared/src/roles.js';
import { mapMembershipError } from '../errors.js';
import { defineOperation, type Context } from '../http.js';
import { can, ROLE_RANK, type Role } from '../../../shared/src/permissions.js';
import { actingMember, authorize, inTenant, type Acting } from '../tenant-access.js';
import { invitationSchema, inviteByEmail } from './invitations.js';

export const permissionListSchema = z
  .array(z.string().regex(/^(\*|[a-z][a-z0-9_]*:(\*|[a-z][a-z0-9_]*))$/, 'must look like resource:action, resource:* or *'))
  .max(50);

const memberSchema = z.object({
  userId: z.uuid(),
  email: z.string(),
  displayName: z.string(),
  role: z.enum(ROLES),
  permissions: z.array(z.string()),
  joinedAt: z.string(),
});

const userIdParams = z.object({ userId: z.uuid() });

/** A membership as it is before a change. */
interface Current {
  role: Role;
  permissions: readonly string[];
}

/** Whose membership a change touches: an existing one, or (null) one being added. */
type Target = { userId: string; current: Current } | null;

/**
 * The rules every membership change obeys, the same the database holds every writer to
 * (tenant_members_grant_bounds), asked here first so the answer is a clear 403: nobody
 * raises their own role or adds to their own permissions (stepping down and dropping
 * extras are fine); changing someone else needs users:write (the caller checks it), a role
 * at most your own before and after (owner > admin > member > guest), and only
 * permissions you hold yourself.
 */
function checkChange(acting: Acting, target: Target, role: Role | undefined, permissions: readonly string[] | undefined): void {
  const current = target?.current;
  const added = (permissions ?? []).filter((permission) => !current?.permissions.includes(permission));
  if (target?.userId === acting.userId && current) {
    if (role && ROLE_RANK[role] > ROLE_RANK[current.role]) throw fail('forbidden', `you cannot raise your own role (${current.role} to ${role})`);
    if (added.length > 0) throw fail('forbidden', 'you cannot add to your own permissions');
    return;
  }
  const own = acting.member.role;
  if (current && ROLE_RANK[current.role] > ROLE_RANK[own]) throw fail('forbidden', `you cannot change a member whose role (${current.role}) is above your own (${own})`);
  if (role && ROLE_RANK[role] > ROLE_RANK[own]) throw fail('forbidden', `you cannot give the role ${role}: it is above your own (${own})`);
  for (const permission of added) {
    if (!can(acting.member, permission)) throw fail('forbidden', `you cannot grant ${permission}: you do not hold it`);
  }
}

interface MemberRow {
  user_id: string;
  email: string;
  display_name: string;
  role: Role;
  permissions: string[];
  joined_at: Date;
}

const view = (row: MemberRow) => ({
  userId: row.user_id,
  email: row.email,
  displayName: row.display_name,
  role: row.role,
  permissions: row.permissions,
  joinedAt: row.joined_at.toISOString(),
});

const SELECT_MEMBER = `SELECT m.user_id, u.email, u.display_name, m.role, m.permissions, m.joined_at
  FROM tenant_members m JOIN users u ON u.id = m.user_id`;

async function existingMember(context: Context<unknown, unknown, unknown>, acting: Acting, userId: string): Promise<NonNullable<Target>> {
  const current = await inTenant(context.deps, acting, async (client) => {
    const { rows } = await client.query<Current>('SELECT role, permissions FROM tenant_members WHERE tenant_id = $1 AND user_id = $2', [acting.tenantId, userId]);
    return rows[0];
  });
  if (!current) throw fail('member_not_found');
  return { userId, current };
}

export const listMembers = defineOperation({
  method: 'get',
  path: '/auth/members',
  summary: "The members of the token's tenant (users:read)",
  tag: 'members',
  auth: 'token',
  responses: { 200: { description: 'members', schema: z.object({ members: z.array(memberSchema) }) }, 403: { description: 'missing users:read' } },
  async handler(context) {
    const acting = await actingMember(context);
    authorize(acting, 'users:read');
    const rows = await inTenant(context.deps, acting, async (client) => (await client.query<MemberRow>(`${SELECT_MEMBER} WHERE m.tenant_id = $1 ORDER BY u.email`, [acting.tenantId])).rows);
    return { body: { members: rows.map(view) } };
  },
});

export const addMember = defineOperation({
  method: 'post',
  path: '/auth/members',
  summary:
    'Add a member by email (users:write; a role at most your own, only permissions you hold): an account with a verified address joins now; any other address gets an invitation',
  tag: 'members',
  auth: 'token',
  body: z.object({ email: emailSchema, role: z.enum(ROLES).default('member'), permissions: permissionListSchema.default([]) }),
  responses: {
    201: { description: 'added: the address belongs to a verified account', schema: memberSchema },
    202: { description: 'no verified account has the address: invited and mailed instead', schema: invitationSchema },
    403: { description: 'missing users:write, a role above your own, or a permission you do not hold' },
    409: { description: 'already a member, a pending invitation exists, or the user limit is reached' },
    422: { description: 'extra permissions for an address that can only be invited' },
  },
  async handler(context) {
    const acting = await actingMember(context);
    authorize(acting, 'users:write');
    const { body, deps } = context;
    checkChange(acting, null, body.role, body.permissions);
    // Only a verified address proves its account belongs to the mailbox's owner: an
    // account someone registered for another person's address must not become a member.
    const { rows: users } = await deps.pool.query<{ id: string }>('SELECT id FROM users WHERE lower(email COLLATE "und-x-icu") = $1 AND email_verified_at IS NOT NULL', [body.email]);
    const user = users[0];
    if (!user) {
      if (body.permissions.length > 0) {
        throw fail('validation_failed', 'permissions: no verified account has this address, so it is invited; grant permissions once they have joined');
      }
      return { status: 202, body: await inviteByEmail(deps, acting, body.email, body.role) };
    }
    const row = await inTenant(deps, acting, async (client) => {
      await client.query('INSERT INTO tenant_members (tenant_id, user_id, role, permissions, invited_by) VALUES ($1, $2, $3, $4, $5)', [
        acting.tenantId,
        user.id,
        body.role,
        body.permissions,
        acting.userId,
      ]);
      return (await client.query<MemberRow>(`${SELECT_MEMBER} WHERE m.tenant_id = $1 AND m.user_id = $2`, [acting.tenantId, user.id])).rows[0]!;
    }).catch(mapMembershipError);
    return { status: 201, body: view(row) };
  },
});

export const updateMember = defineOperation({
  method: 'patch',
  path: '/auth/members/:userId',
  summary: "Change a member's role or extra permissions (users:write; roles at most your own; never raising your own; the last owner stays)",
  tag: 'members',
  auth: 'token',
  params: userIdParams,
  body: z.object({ role: z.enum(ROLES).optional(), permissions: permissionListSchema.optional() }).refine((body) => body.role !== undefined || body.permissions !== undefined, 'give role or permissions'),
  responses: {
    200: { description: 'changed', schema: memberSchema },
    403: { description: 'missing users:write, a role above your own, a permission you do not hold, or raising yourself' },
    404: { description: 'no such member' },
    409: { description: 'would leave no owner' },
  },
  async handler(context) {
    const acting = await actingMember(context);
    authorize(acting, 'users:write');
    const { body, params } = context;
    checkChange(acting, await existingMember(context, acting, params.userId), body.role, body.permissions);
    const row = await inTenant(context.deps, acting, async (client) => {
      await client.query('UPDATE tenant_members SET role = coalesce($3, role), permissions = coalesce($4, permissions) WHERE tenant_id = $1 AND user_id = $2', [
        acting.tenantId,
        params.userId,
        body.role ?? null,
        body.permissions ?? null,
      ]);
      return (await client.query<MemberRow>(`${SELECT_MEMBER} WHERE m.tenant_id = $1 AND m.user_id = $2`, [acting.tenantId, params.userId])).rows[0];
    }).catch(mapMembershipError);
    if (!row) throw fail('member_not_found');
    return { body: view(row) };
  },
});

export const removeMember = defineOperation({
  method: 'delete',
  path: '/auth/members/:userId',
  summary: 'Remove a member, or leave (your own id); users:write and a role at most your own for others; the last owner cannot leave',
  tag: 'members',
  auth: 'token',
  params: userIdParams,
  responses: { 204: { description: 'removed' }, 404: { description: 'no such member' }, 409: { description: 'would leave no owner' } },
  async handler(context) {
    const acting = await actingMember(context);
    const { params } = context;
    if (params.userId !== acting.userId) {
      authorize(acting, 'users:write');
      checkChange(acting, await existingMember(context, acting, params.userId), undefined, undefined);
    }
    const removed = await inTenant(context.deps, acting, async (client) => {
      const { rowCount } = await client.query('DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2', [acting.tenantId, params.userId]);
      return (rowCount ?? 0) > 0;
    }).catch(mapMembershipError);
    if (!removed) throw fail('member_not_found');
    return { status: 204 };
  },
});

export const transferOwnership = defineOperation({
  method: 'post',
  path: '/auth/members/transfer-ownership',
  summary: 'Make another member an owner and step down to admin, in one transaction (owners only)',
  tag: 'members',
  auth: 'token',
  body: z.object({ userId: z.uuid() }),
  responses: { 200: { description: 'transferred' }, 404: { description: 'no such member' } },
  async handler(context) {
    const acting = await actingMember(context);
    authorize(acting, 'ownership:transfer');
    const { body } = context;
    if (body.userId === acting.userId) throw fail('validation_failed', 'userId: you are already an owner');
    await inTenant(context.deps, acting, async (client) => {
      const { rowCount } = await client.query("UPDATE tenant_members SET role = 'owner' WHERE tenant_id = $1 AND user_id = $2", [acting.tenantId, body.userId]);
      if (!rowCount) throw fail('member_not_found');
      await client.query("UPDATE tenant_members SET role = 'admin' WHERE tenant_id = $1 AND user_id = $2", [acting.tenantId, acting.userId]);
      await client.query('UPDATE tenants SET owner_user_id = $2 WHERE id = $1', [acting.tenantId, body.userId]);
    }).catch(mapMembershipError);
    return { body: { ownerUserId: body.userId } };
  },
});
