import { z } from 'zod';
import { withTenant } from '../../../shared/src/db/tenant-context.js';
import type { AuthDependencies } from '../deps.js';
import { fail } from '../../../shared/src/errors/catalog.js';
import { pgError } from '../../../shared/src/errors/database.js';
import { ROLES } from '../../../shared/src/roles.js';
import { defineOperation, type Context } from '../http.js';
import type { Role } from '../../../shared/src/permissions.js';
import { memberTokenState } from '../tokens.js';

/** Impersonation tokens live 5 minutes at most. */
export const IMPERSONATION_TTL_SECONDS = 300;

/**
 * Platform staff are users with users.is_staff, checked afresh on every call: separate
 * from tenant roles, and a staff flag taken away counts at once. Their token is their own
 * login token; API-key and impersonation tokens never act as staff.
 */
async function requireStaff(context: Context<unknown, unknown, unknown>): Promise<string> {
  const principal = context.principal!;
  if (principal.apiKeyId || principal.actor || principal.readOnly) throw fail('forbidden', 'staff routes need a staff login token');
  const { rows } = await context.deps.pool.query<{ is_staff: boolean }>('SELECT is_staff FROM users WHERE id = $1 AND disabled_at IS NULL', [principal.userId]);
  if (!rows[0]?.is_staff) throw fail('forbidden', 'platform staff only');
  return principal.userId;
}

/** One audit entry in the tenant, written by the same transaction as the action. */
async function audit(deps: AuthDependencies, staffId: string, tenantId: string, entry: { action: string; targetType: string; targetId: string | null; reason: string | null; requestId?: string }) {
  await withTenant(deps.pool, { tenantId, userId: staffId, role: 'staff' }, (client) =>
    client.query(
      `INSERT INTO audit_log (tenant_id, actor, actor_user_id, action, target_type, target_id, reason, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [tenantId, `staff:${staffId}`, staffId, entry.action, entry.targetType, entry.targetId, entry.reason, entry.requestId ?? null],
    ),
  );
}

export const staffListTenants = defineOperation({
  method: 'get',
  path: '/auth/staff/tenants',
  summary: 'Platform staff: every tenant, searchable by slug or name (audited)',
  tag: 'staff',
  auth: 'token',
  query: z.object({ search: z.string().trim().min(1).max(100).optional(), limit: z.coerce.number().int().min(1).max(500).default(100) }),
  responses: { 200: { description: 'tenants' }, 403: { description: 'not platform staff' } },
  async handler(context) {
    const staffId = await requireStaff(context);
    const { rows } = await context.deps.pool
      .query<{ id: string; slug: string; name: string; status: string; plan_id: string; member_count: string; created_at: Date }>('SELECT * FROM app.staff_list_tenants($1, $2, $3)', [
        staffId,
        context.query.search ?? null,
        context.query.limit,
      ])
      .catch((error: unknown) => {
        if (pgError(error).code === '42501') throw fail('forbidden', 'platform staff only');
        throw error;
      });
    return {
      body: {
        tenants: rows.map((row) => ({ id: row.id, slug: row.slug, name: row.name, status: row.status, plan: row.plan_id, memberCount: Number(row.member_count), createdAt: row.created_at.toISOString() })),
      },
    };
  },
});

export const staffListMembers = defineOperation({
  method: 'get',
  path: '/auth/staff/tenants/:tenantId/members',
  summary: "Platform staff: a tenant's members (audited)",
  tag: 'staff',
  auth: 'token',
  params: z.object({ tenantId: z.uuid() }),
  responses: { 200: { description: 'members' }, 403: { description: 'not platform staff' }, 404: { description: 'no such tenant' } },
  async handler(context) {
    const staffId = await requireStaff(context);
    const { tenantId } = context.params;
    const members = await withTenant(context.deps.pool, { tenantId, userId: staffId, role: 'staff' }, async (client) => {
      const tenant = await client.query('SELECT 1 FROM tenants WHERE id = $1', [tenantId]);
      if (!tenant.rowCount) return null;
      await client.query(
        `INSERT INTO audit_log (tenant_id, actor, actor_user_id, action, target_type, target_id, request_id) VALUES ($1, $2, $3, 'staff.read_members', 'tenant_members', $4, $5)`,
        [tenantId, `staff:${staffId}`, staffId, tenantId, context.req.get('x-request-id') ?? null],
      );
      const { rows } = await client.query<{ user_id: string; email: string; role: Role; permissions: string[] }>(
        'SELECT m.user_id, u.email, m.role, m.permissions FROM tenant_members m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 ORDER BY u.email',
        [tenantId],
      );
      return rows;
    });
    if (!members) throw fail('tenant_not_found');
    return { body: { members: members.map((row) => ({ userId: row.user_id, email: row.email, role: row.role, permissions: row.permissions })) } };
  },
});

export const staffImpersonate = defineOperation({
  method: 'post',
  path: '/auth/staff/impersonate',
  summary:
    "Platform staff: a 5-minute, read-only access token acting as a member of an active tenant (the member's role's read-only Hasura role, which may select and never write), with an `act` claim naming the staff user; the reason is required and audited",
  tag: 'staff',
  auth: 'token',
  body: z.object({ tenantId: z.uuid(), userId: z.uuid(), reason: z.string().trim().min(10, 'must say why, in at least 10 characters').max(500) }),
  responses: {
    200: {
      description: 'an impersonation token',
      schema: z.object({ accessToken: z.string(), tokenType: z.literal('Bearer'), expiresIn: z.number(), role: z.enum(ROLES), readOnly: z.literal(true) }),
    },
    403: { description: 'not platform staff, or the tenant is not active' },
    404: { description: 'no such member' },
  },
  async handler(context) {
    const staffId = await requireStaff(context);
    const { deps, body } = context;
    if (body.userId === staffId) throw fail('validation_failed', 'userId: impersonating yourself makes no sense');
    if (!(await memberTokenState(deps.pool, body.tenantId, body.userId))) throw fail('member_not_found');
    const { rows: tenants } = await deps.pool.query<{ status: string }>('SELECT status FROM app.resolve_tenant_by_id($1)', [body.tenantId]);
    if (tenants[0]?.status !== 'active') throw fail('tenant_inactive');
    await audit(deps, staffId, body.tenantId, { action: 'staff.impersonate', targetType: 'user', targetId: body.userId, reason: body.reason, requestId: context.req.get('x-request-id') });
    context.log.warn({ staffId, tenantId: body.tenantId, userId: body.userId }, 'staff impersonation');
    const ttl = Math.min(IMPERSONATION_TTL_SECONDS, deps.tokens.ttlSeconds);
    // Staff look and never change: the token's only Hasura role is the read-only twin of the
    // member's, so GraphQL mutations fail in Hasura itself, not only on /auth.
    const { token, state } = await deps.tokens.signFresh(async () => {
      const member = await memberTokenState(deps.pool, body.tenantId, body.userId);
      if (!member) throw fail('member_not_found');
      return {
        role: member.role,
        subject: { userId: body.userId, tenant: { id: body.tenantId, role: member.role }, readOnly: true, actor: staffId, ttlSeconds: ttl },
        validAfter: member.validAfter,
      };
    });
    return { body: { accessToken: token, tokenType: 'Bearer', expiresIn: ttl, role: state.role, readOnly: true } };
  },
});
