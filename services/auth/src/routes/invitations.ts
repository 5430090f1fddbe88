import { randomUUID } from 'node:crypto';
import type { PoolClient } from 'pg';
import { z } from 'zod';
import { withTenant } from '../../../shared/src/db/tenant-context.js';
import { invitationMail, MAILED_PATHS } from '../../../shared/src/mail/templates.js';
import { link, sendMail } from '../email-tokens.js';
import type { AuthDependencies } from '../deps.js';
import { emailSchema } from '../../../shared/src/email.js';
import { fail } from '../../../shared/src/errors/catalog.js';
import { pgError } from '../../../shared/src/errors/database.js';
import { passwordSchema } from '../../../shared/src/passwords.js';
import { ROLES } from '../../../shared/src/roles.js';
import { mapMembershipError } from '../errors.js';
import { defineOperation } from '../http.js';
import { ROLE_RANK, type Role } from '../../../shared/src/permissions.js';
import { hashToken, newOpaqueToken } from '../../../shared/src/secrets.js';
import { pickTenant, startSession } from '../sessions.js';
import { actingMember, authorize, inTenant, type Acting } from '../tenant-access.js';
import { sessionSchema } from './session.js';

interface InvitationRow {
  id: string;
  email: string;
  role: Role;
  status: 'pending' | 'accepted' | 'revoked' | 'expired';
  expires_at: Date;
  last_sent_at: Date;
  created_at: Date;
}

export const invitationSchema = z.object({
  id: z.uuid(),
  email: z.string(),
  role: z.enum(ROLES),
  status: z.enum(['pending', 'accepted', 'revoked', 'expired']),
  expiresAt: z.string(),
  lastSentAt: z.string(),
});

const COLUMNS = 'id, email, role, status, expires_at, last_sent_at, created_at';
const view = (row: InvitationRow) => ({
  id: row.id,
  email: row.email,
  role: row.role,
  // A pending invitation past its expiry is expired, whether or not a sweep has marked it.
  status: row.status === 'pending' && row.expires_at.getTime() <= Date.now() ? 'expired' : row.status,
  expiresAt: row.expires_at.toISOString(),
  lastSentAt: row.last_sent_at.toISOString(),
});

async function tenantName(client: PoolClient, tenantId: string): Promise<string> {
  const { rows } = await client.query<{ name: string }>('SELECT name FROM tenants WHERE id = $1', [tenantId]);
  return rows[0]?.name ?? 'a team';
}

/** Sent after the transaction committed: no mail for an invitation that does not exist. */
async function mailInvitation(deps: AuthDependencies, name: string, email: string, token: string): Promise<void> {
  await sendMail(deps, email, invitationMail(name, link(deps, MAILED_PATHS.acceptInvitation, token)));
}

const idParams = z.object({ id: z.uuid() });

/**
 * Invites `email` into the acting member's tenant with `role` and mails the link: the one
 * way in for an address without a verified account (POST /auth/invitations, and POST
 * /auth/members for such an address). The role is at most the inviter's own; the database
 * holds every writer to the same (tenant_invitations_grant_bounds).
 */
export async function inviteByEmail(deps: AuthDependencies, acting: Acting, email: string, role: Role): Promise<z.infer<typeof invitationSchema>> {
  authorize(acting, 'users:write');
  if (ROLE_RANK[role] > ROLE_RANK[acting.member.role]) throw fail('forbidden', `you cannot invite as ${role}: it is above your own role (${acting.member.role})`);
  const token = newOpaqueToken();
  const row = await inTenant(deps, acting, async (client) => {
    const member = await client.query('SELECT 1 FROM tenant_members m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND lower(u.email COLLATE "und-x-icu") = $2', [acting.tenantId, email]);
    if (member.rowCount) throw fail('already_member');
    await client.query(
      `UPDATE tenant_invitations SET status = 'expired' WHERE tenant_id = $1 AND lower(email COLLATE "und-x-icu") = $2 AND status = 'pending' AND expires_at <= now()`,
      [acting.tenantId, email],
    );
    const { rows } = await client.query<InvitationRow>(
      `INSERT INTO tenant_invitations (tenant_id, email, role, token_hash, invited_by) VALUES ($1, $2, $3, $4, $5) RETURNING ${COLUMNS}`,
      [acting.tenantId, email, role, hashToken(token), acting.userId],
    );
    return { row: rows[0]!, name: await tenantName(client, acting.tenantId) };
  }).catch(mapMembershipError);
  await mailInvitation(deps, row.name, email, token);
  return view(row.row);
}

export const createInvitation = defineOperation({
  method: 'post',
  path: '/auth/invitations',
  summary: 'Invite someone by email with a role at most your own (users:write); mails a single-use link valid for 7 days',
  tag: 'invitations',
  auth: 'token',
  body: z.object({ email: emailSchema, role: z.enum(ROLES).default('member') }),
  responses: {
    201: { description: 'invited and mailed', schema: invitationSchema },
    403: { description: 'missing users:write, or a role above your own' },
    409: { description: 'a pending invitation exists, or already a member' },
  },
  async handler(context) {
    const acting = await actingMember(context);
    return { status: 201, body: await inviteByEmail(context.deps, acting, context.body.email, context.body.role) };
  },
});

export const listInvitations = defineOperation({
  method: 'get',
  path: '/auth/invitations',
  summary: "The tenant's invitations (users:read)",
  tag: 'invitations',
  auth: 'token',
  responses: { 200: { description: 'invitations', schema: z.object({ invitations: z.array(invitationSchema) }) } },
  async handler(context) {
    const acting = await actingMember(context);
    authorize(acting, 'users:read');
    const rows = await inTenant(context.deps, acting, async (client) => (await client.query<InvitationRow>(`SELECT ${COLUMNS} FROM tenant_invitations WHERE tenant_id = $1 ORDER BY created_at DESC`, [acting.tenantId])).rows);
    return { body: { invitations: rows.map(view) } };
  },
});

/**
 * Locks the pending invitation `id` for a resend or a revocation by `acting`. Re-issuing or
 * revoking an invitation hands out or takes away its role, so the role must be at most the
 * actor's own, as for inviting (the database holds every writer to the same).
 */
async function lockPendingWithinRank(client: PoolClient, acting: Acting, id: string): Promise<void> {
  const { rows } = await client.query<{ role: Role; status: InvitationRow['status'] }>(
    'SELECT role, status FROM tenant_invitations WHERE tenant_id = $1 AND id = $2 FOR UPDATE',
    [acting.tenantId, id],
  );
  const invitation = rows[0];
  if (!invitation) throw fail('invitation_not_found');
  if (ROLE_RANK[invitation.role] > ROLE_RANK[acting.member.role]) {
    throw fail('forbidden', `you cannot change an invitation as ${invitation.role}: it is above your own role (${acting.member.role})`);
  }
  if (invitation.status !== 'pending') throw fail('invitation_not_pending');
}

export const resendInvitation = defineOperation({
  method: 'post',
  path: '/auth/invitations/:id/resend',
  summary: 'Mail a pending invitation again with a new link and a fresh 7 days; the old link stops working (users:write, its role at most yours)',
  tag: 'invitations',
  auth: 'token',
  params: idParams,
  responses: {
    200: { description: 'resent', schema: invitationSchema },
    403: { description: "missing users:write, or the invitation's role is above yours" },
    404: { description: 'no such invitation' },
    409: { description: 'not pending' },
  },
  async handler(context) {
    const acting = await actingMember(context);
    authorize(acting, 'users:write');
    const token = newOpaqueToken();
    const row = await inTenant(context.deps, acting, async (client) => {
      await lockPendingWithinRank(client, acting, context.params.id);
      const { rows } = await client.query<InvitationRow>(
        `UPDATE tenant_invitations SET token_hash = $3, expires_at = now() + interval '7 days', last_sent_at = now()
         WHERE tenant_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
        [acting.tenantId, context.params.id, hashToken(token)],
      );
      return { row: rows[0]!, name: await tenantName(client, acting.tenantId) };
    }).catch(mapMembershipError);
    await mailInvitation(context.deps, row.name, row.row.email, token);
    return { body: view(row.row) };
  },
});

export const revokeInvitation = defineOperation({
  method: 'delete',
  path: '/auth/invitations/:id',
  summary: 'Revoke a pending invitation (users:write, its role at most yours)',
  tag: 'invitations',
  auth: 'token',
  params: idParams,
  responses: {
    204: { description: 'revoked' },
    403: { description: "missing users:write, or the invitation's role is above yours" },
    404: { description: 'no such invitation' },
    409: { description: 'not pending' },
  },
  async handler(context) {
    const acting = await actingMember(context);
    authorize(acting, 'users:write');
    await inTenant(context.deps, acting, async (client) => {
      await lockPendingWithinRank(client, acting, context.params.id);
      await client.query("UPDATE tenant_invitations SET status = 'revoked', revoked_at = now() WHERE tenant_id = $1 AND id = $2", [acting.tenantId, context.params.id]);
    }).catch(mapMembershipError);
    return { status: 204 };
  },
});

interface InvitationLookup {
  id: string;
  tenant_id: string;
  tenant_status: string;
  email: string;
  role: Role;
  status: string;
  expires_at: Date;
}

export const acceptInvitation = defineOperation({
  method: 'post',
  path: '/auth/invitations/accept',
  summary:
    'Accept an invitation: logged in (Bearer token of the invited email) or, for a new account, with a password; answers a session in the tenant',
  tag: 'invitations',
  auth: 'optional',
  body: z.object({ token: z.string().min(1).max(200), password: passwordSchema.optional(), displayName: z.string().trim().max(200).optional() }),
  responses: {
    200: { description: 'joined; a session scoped to the tenant', schema: sessionSchema },
    403: { description: 'the invitation is for another email, or the tenant is not active' },
    404: { description: 'no such invitation' },
    409: { description: 'already used, revoked or expired; or an account exists and must log in first; or the user limit is reached' },
  },
  async handler(context) {
    const { deps, body, principal, req } = context;
    const { rows } = await deps.pool.query<InvitationLookup>('SELECT * FROM app.invitation_by_token_hash($1)', [hashToken(body.token)]);
    const invitation = rows[0];
    if (!invitation) throw fail('invitation_not_found');
    if (invitation.status !== 'pending' || invitation.expires_at.getTime() <= Date.now()) throw fail('invitation_not_pending');
    if (invitation.tenant_status !== 'active') throw fail('tenant_inactive');

    let userId: string;
    let newUser: { passwordHash: string } | null = null;
    if (principal) {
      if (principal.apiKeyId || principal.actor) throw fail('forbidden');
      const { rows: users } = await deps.pool.query<{ email: string }>('SELECT email FROM users WHERE id = $1 AND disabled_at IS NULL', [principal.userId]);
      if (!users[0]) throw fail('unauthenticated');
      if (users[0].email.toLowerCase() !== invitation.email.toLowerCase()) throw fail('email_mismatch');
      userId = principal.userId;
    } else {
      const { rows: existing } = await deps.pool.query('SELECT 1 FROM users WHERE lower(email COLLATE "und-x-icu") = $1', [invitation.email]);
      if (existing.length) throw fail('login_required');
      if (!body.password) throw fail('validation_failed', 'password: required to create the account');
      newUser = { passwordHash: await deps.passwords.hash(body.password) };
      userId = randomUUID();
    }

    await withTenant(deps.pool, { tenantId: invitation.tenant_id, userId, role: invitation.role }, async (client) => {
      if (newUser) {
        // The invitation reached this mailbox: the address is verified.
        await client.query('INSERT INTO users (id, email, password_hash, display_name, email_verified_at) VALUES ($1, $2, $3, $4, now())', [
          userId,
          invitation.email,
          newUser.passwordHash,
          body.displayName ?? '',
        ]);
      }
      // No member of the tenant acts here, so the grant bounds have no writer to hold to:
      // the definer function checks the invitation itself (pending, unexpired, this
      // address, an active tenant) and joins with exactly the role it names.
      await client.query('SELECT * FROM app.accept_invitation($1, $2)', [hashToken(body.token), userId]);
    }).catch((error: unknown) => {
      const { code, constraint } = pgError(error);
      if (code === '23505' && constraint === 'users_email_key') throw fail('login_required');
      return mapMembershipError(error);
    });
    const tenant = await pickTenant(deps.pool, userId, invitation.tenant_id);
    return { body: await startSession(deps, userId, tenant, { userAgent: req.get('user-agent'), ip: req.ip }) };
  },
});
