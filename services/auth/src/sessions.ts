import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import type { AuthDependencies } from './deps.js';
import { fail } from '../../shared/src/errors/catalog.js';
import type { Role } from '../../shared/src/permissions.js';
import { hashToken, newOpaqueToken } from '../../shared/src/secrets.js';
import { memberTokenState } from './tokens.js';

export interface UserTenant {
  tenant_id: string;
  slug: string;
  name: string;
  status: 'active' | 'suspended' | 'deleted';
  /** Why a suspended tenant is suspended; null when it is not. */
  suspension_reason: string | null;
  role: Role;
  joined_at: Date;
}

/**
 * The user's tenants (not deleted ones), through the SECURITY DEFINER helpers: no tenant
 * context exists yet. The resolver's answer adds why a tenant is suspended.
 */
export async function userTenants(pool: Pool | PoolClient, userId: string): Promise<UserTenant[]> {
  const { rows } = await pool.query<UserTenant>({
    name: 'auth-user-tenants',
    text: `SELECT u.tenant_id, u.slug, u.name, u.status, r.suspension_reason, u.role, u.joined_at
           FROM app.user_tenants($1) u LEFT JOIN LATERAL app.resolve_tenant_by_id(u.tenant_id) r ON true
           ORDER BY u.slug`,
    values: [userId],
  });
  return rows;
}

/**
 * Whether the member may hold a session in the tenant: an active one, or, for its owners
 * only, one suspended for billing, so that they can reach the billing portal and pay (the
 * edge lets such a token reach exactly GET /billing/subscription and POST /billing/portal).
 */
export function maySessionIn(tenant: Pick<UserTenant, 'status' | 'suspension_reason' | 'role'>): boolean {
  if (tenant.status === 'active') return true;
  return tenant.status === 'suspended' && tenant.suspension_reason === 'billing' && tenant.role === 'owner';
}

/**
 * The tenant a session is scoped to: the requested one (id or slug) or, by default, the first
 * active one, else the first the user may still hold a session in (maySessionIn). Inside a
 * transaction, pass its client: a second connection from the pool while the first holds a
 * lock waits for itself once every connection does the same.
 */
export async function pickTenant(db: Pool | PoolClient, userId: string, wanted: string | null | undefined): Promise<UserTenant | null> {
  const tenants = await userTenants(db, userId);
  if (wanted) {
    const tenant = tenants.find((candidate) => candidate.tenant_id === wanted || candidate.slug === wanted);
    if (!tenant) throw fail('not_a_member');
    if (!maySessionIn(tenant)) throw fail('tenant_inactive');
    return tenant;
  }
  return tenants.find((candidate) => candidate.status === 'active') ?? tenants.find(maySessionIn) ?? null;
}

export interface IssuedSession {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
  refreshToken: string;
  tenant: { id: string; slug: string; role: Role } | null;
}

interface RefreshRow {
  id: string;
  user_id: string;
  family_id: string;
  session_tenant_id: string | null;
  expires_at: Date;
  rotated_at: Date | null;
  revoked_at: Date | null;
}

async function insertRefreshToken(
  client: Pool | PoolClient,
  deps: AuthDependencies,
  row: { userId: string; familyId: string; parentId: string | null; tenantId: string | null; userAgent?: string; ip?: string },
): Promise<string> {
  const token = newOpaqueToken();
  await client.query(
    `INSERT INTO refresh_tokens (user_id, family_id, parent_id, token_hash, session_tenant_id, expires_at, user_agent, ip)
     VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7, $8)`,
    [row.userId, row.familyId, row.parentId, hashToken(token), row.tenantId, deps.refreshTtlSeconds, row.userAgent?.slice(0, 500) ?? null, row.ip ?? null],
  );
  return token;
}

/**
 * An access token for the user, scoped to `tenant` with the role the member has now (read
 * afresh, so a change since `tenant` was read counts), never older than the member's last
 * change (TokenIssuer.signFresh). Null tenant: the member left meanwhile, or none was asked.
 */
export async function memberAccessToken(
  deps: AuthDependencies,
  userId: string,
  tenant: { tenant_id: string } | null,
  db: Pool | PoolClient = deps.pool,
): Promise<{ accessToken: string; role: Role | null }> {
  const { token, state } = await deps.tokens.signFresh(async () => {
    const member = tenant ? await memberTokenState(db, tenant.tenant_id, userId) : null;
    return { subject: { userId, tenant: member && tenant ? { id: tenant.tenant_id, role: member.role } : null }, validAfter: member?.validAfter ?? null };
  });
  return { accessToken: token, role: state.subject.tenant?.role ?? null };
}

/** The switch-tenant answer's token: like memberAccessToken, but a member who left meanwhile is refused. */
export async function accessTokenFor(deps: AuthDependencies, userId: string, tenant: UserTenant): Promise<string> {
  const issued = await memberAccessToken(deps, userId, tenant);
  if (!issued.role) throw fail('not_a_member');
  return issued.accessToken;
}

async function sessionOf(deps: AuthDependencies, userId: string, tenant: UserTenant | null, refreshToken: string, db?: PoolClient): Promise<IssuedSession> {
  const issued = await memberAccessToken(deps, userId, tenant, db);
  return {
    accessToken: issued.accessToken,
    tokenType: 'Bearer',
    expiresIn: deps.tokens.ttlSeconds,
    refreshToken,
    tenant: tenant && issued.role ? { id: tenant.tenant_id, slug: tenant.slug, role: issued.role } : null,
  };
}

export interface ClientInfo {
  userAgent?: string;
  ip?: string;
}

/** A new login session: a new refresh-token family scoped to `tenant`. */
export async function startSession(deps: AuthDependencies, userId: string, tenant: UserTenant | null, client: ClientInfo): Promise<IssuedSession> {
  const refreshToken = await insertRefreshToken(deps.pool, deps, { userId, familyId: randomUUID(), parentId: null, tenantId: tenant?.tenant_id ?? null, ...client });
  return sessionOf(deps, userId, tenant, refreshToken);
}

/**
 * Rotates a refresh token: the presented one is spent and a child in the same family
 * replaces it. Presenting a spent one again is reuse — someone else holds a copy — and
 * revokes the whole family. `switchTo` moves the session to another tenant.
 */
export async function rotateSession(
  deps: AuthDependencies,
  presented: string,
  client: ClientInfo,
  switchTo?: { userId: string; tenant: string },
): Promise<IssuedSession> {
  const db = await deps.pool.connect();
  try {
    await db.query('BEGIN');
    const { rows } = await db.query<RefreshRow>(
      'SELECT id, user_id, family_id, session_tenant_id, expires_at, rotated_at, revoked_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE',
      [hashToken(presented)],
    );
    const row = rows[0];
    if (!row || (switchTo && row.user_id !== switchTo.userId)) throw fail('invalid_refresh_token');
    if (row.rotated_at && !row.revoked_at) {
      await db.query("UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = 'reuse' WHERE family_id = $1 AND revoked_at IS NULL", [row.family_id]);
      await db.query('COMMIT');
      deps.logger.warn({ userId: row.user_id, familyId: row.family_id }, 'refresh token reuse: family revoked');
      throw fail('refresh_token_reused');
    }
    if (row.revoked_at || row.rotated_at || row.expires_at.getTime() <= Date.now()) throw fail('invalid_refresh_token');
    const { rows: users } = await db.query<{ disabled_at: Date | null }>('SELECT disabled_at FROM users WHERE id = $1', [row.user_id]);
    if (!users[0] || users[0].disabled_at) throw fail('invalid_refresh_token');

    // The role is read afresh: a token never outlives a role change by more than its TTL.
    let tenant: UserTenant | null;
    if (switchTo) {
      tenant = await pickTenant(db, row.user_id, switchTo.tenant);
    } else {
      const tenants = await userTenants(db, row.user_id);
      tenant = tenants.find((candidate) => candidate.tenant_id === row.session_tenant_id && maySessionIn(candidate)) ?? null;
    }
    await db.query('UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1', [row.id]);
    const refreshToken = await insertRefreshToken(db, deps, {
      userId: row.user_id,
      familyId: row.family_id,
      parentId: row.id,
      tenantId: tenant?.tenant_id ?? null,
      ...client,
    });
    // Signed before COMMIT (on this connection: no second one from the pool while this one
    // holds the row), so the presented token is spent only when its successor is handed out.
    const session = await sessionOf(deps, row.user_id, tenant, refreshToken, db);
    await db.query('COMMIT');
    return session;
  } catch (error) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    db.release();
  }
}

/** Ends the session the refresh token belongs to: its whole family. */
export async function revokeFamily(pool: Pool, presented: string): Promise<boolean> {
  const { rowCount } = await pool.query(
    `UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = 'logout'
     WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL`,
    [hashToken(presented)],
  );
  return (rowCount ?? 0) > 0;
}

export async function revokeAllSessions(client: Pool | PoolClient, userId: string, reason: string): Promise<void> {
  await client.query('UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = $2 WHERE user_id = $1 AND revoked_at IS NULL', [userId, reason]);
}
