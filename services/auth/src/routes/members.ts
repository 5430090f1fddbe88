import { z } from 'zod';
import { fail, mapMembershipError } from '../errors.js';
import { defineOperation, emailSchema, type Context } from '../http.js';
import { can, ROLES, type Role } from '../permissions.js';
import { actingMember, authorize, inTenant, type Acting } from '../tenant-access.js';

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

/**
 * Rules every membership change obeys, all asked of can(): managing members needs
 * users:write; touching an owner (or making one) needs owners:write, which only owners
 * hold; nobody hands out an extra permission they do not hold themselves.
 */
function checkGrant(acting: Acting, role: Role | undefined, currentRole: Role | undefined, extras: readonly string[] | undefined): void {
  if (role === 'owner' || currentRole === 'owner') authorize(acting, 'owners:write');
  for (const permission of extras ?? []) {
    if (!can(acting.member, permission)) throw fail('forbidden', `you cannot grant ${permission}`);
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

async function targetRole(context: Context<unknown, unknown, unknown>, acting: Acting, userId: string): Promise<Role> {
  const role = await inTenant(context.deps, acting, async (client) => {
    const { rows } = await client.query<{ role: Role }>('SELECT role FROM tenant_members WHERE tenant_id = $1 AND user_id = $2', [acting.tenantId, userId]);
    return rows[0]?.role;
  });
  if (!role) throw fail('member_not_found');
  return role;
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
  summary: 'Add an existing user by email (users:write; owners only for owners); the plan’s user limit applies, race-free',
  tag: 'members',
  auth: 'token',
  body: z.object({ email: emailSchema, role: z.enum(ROLES).default('member'), permissions: permissionListSchema.default([]) }),
  responses: {
    201: { description: 'added', schema: memberSchema },
    404: { description: 'no user with that email' },
    409: { description: 'already a member, or the user limit is reached' },
  },
  async handler(context) {
    const acting = await actingMember(context);
    authorize(acting, 'users:write');
    const { body } = context;
    checkGrant(acting, body.role, undefined, body.permissions);
    const row = await inTenant(context.deps, acting, async (client) => {
      const { rows: users } = await client.query<{ id: string }>('SELECT id FROM users WHERE lower(email) = lower($1)', [body.email]);
      const user = users[0];
      if (!user) throw fail('user_not_found');
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
  summary: "Change a member's role or extra permissions (users:write; owners only for owners; the last owner stays)",
  tag: 'members',
  auth: 'token',
  params: userIdParams,
  body: z.object({ role: z.enum(ROLES).optional(), permissions: permissionListSchema.optional() }).refine((body) => body.role !== undefined || body.permissions !== undefined, 'give role or permissions'),
  responses: { 200: { description: 'changed', schema: memberSchema }, 404: { description: 'no such member' }, 409: { description: 'would leave no owner' } },
  async handler(context) {
    const acting = await actingMember(context);
    authorize(acting, 'users:write');
    const { body, params } = context;
    const current = await targetRole(context, acting, params.userId);
    checkGrant(acting, body.role, current, body.permissions);
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
  summary: 'Remove a member, or leave (your own id); users:write for others; owners only for owners; the last owner cannot leave',
  tag: 'members',
  auth: 'token',
  params: userIdParams,
  responses: { 204: { description: 'removed' }, 404: { description: 'no such member' }, 409: { description: 'would leave no owner' } },
  async handler(context) {
    const acting = await actingMember(context);
    const { params } = context;
    if (params.userId !== acting.userId) {
      authorize(acting, 'users:write');
      checkGrant(acting, undefined, await targetRole(context, acting, params.userId), undefined);
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
