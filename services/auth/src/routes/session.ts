import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { z } from 'zod';
import { withTenant } from '../../../shared/src/db/tenant-context.js';
import { provisionTenantNamespaces } from '../../../shared/src/storage/namespace.js';
import type { AuthDependencies } from '../deps.js';
import { slugSchema } from '../../../shared/src/tenancy.js';
import { sendVerificationMail } from '../email-tokens.js';
import { emailSchema } from '../../../shared/src/email.js';
import { fail } from '../../../shared/src/errors/catalog.js';
import { databaseRefusal, refusingConstraint } from '../../../shared/src/errors/database.js';
import { PASSWORD_MAX_LENGTH, passwordSchema } from '../../../shared/src/passwords.js';
import { ROLES } from '../../../shared/src/roles.js';
import { defineOperation, type Context } from '../http.js';
import { accessTokenFor, pickTenant, revokeFamily, rotateSession, startSession, userTenants, type ClientInfo, type UserTenant } from '../sessions.js';

export const sessionSchema = z.object({
  accessToken: z.string(),
  tokenType: z.literal('Bearer'),
  expiresIn: z.number().int(),
  refreshToken: z.string(),
  tenant: z.object({ id: z.uuid(), slug: z.string(), role: z.enum(ROLES) }).nullable(),
});

const clientInfo = (context: Context<unknown, unknown, unknown>): ClientInfo => ({ userAgent: context.req.get('user-agent'), ip: context.req.ip });

/** How long a signup waits for S3 and Redis to make the tenant's namespaces before leaving them to the keeper. */
const PROVISION_TIMEOUT_MS = 3_000;

/**
 * Makes a new tenant's bucket and Redis ACL user, after its commit. A signup does not fail
 * because S3 or Redis does: the tenant exists either way, the failure is logged, and the
 * storage service's namespace keeper (notified by the tenants trigger on every insert, and
 * reconciling every tenant periodically) makes them. The user is on without a password:
 * nobody logs in as it before POST /storage/credentials sets one.
 */
async function provisionSignedUpTenant(deps: AuthDependencies, tenantId: string): Promise<void> {
  if (!deps.namespaces) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      provisionTenantNamespaces(deps.namespaces, tenantId, { enabled: true }),
      new Promise((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${PROVISION_TIMEOUT_MS} ms`)), PROVISION_TIMEOUT_MS);
      }),
    ]);
  } catch (error) {
    deps.logger.warn({ err: error, tenantId }, "the new tenant's bucket or Redis user could not be made; the storage service's namespace keeper makes them");
  } finally {
    clearTimeout(timer);
  }
}

export const signup = defineOperation({
  method: 'post',
  path: '/auth/signup',
  summary: 'Create an account, optionally with a first tenant it owns; mails an email-verification link',
  tag: 'session',
  auth: 'none',
  body: z.object({
    email: emailSchema,
    password: passwordSchema,
    displayName: z.string().trim().max(200).optional(),
    tenant: z.object({ slug: slugSchema, name: z.string().trim().min(1).max(200) }).optional(),
  }),
  responses: { 201: { description: 'signed up and logged in', schema: sessionSchema }, 409: { description: 'email or slug taken' } },
  async handler(context) {
    const { deps, body } = context;
    const passwordHash = await deps.passwords.hash(body.password);
    const tenantId = body.tenant ? randomUUID() : null;
    const userId = randomUUID();
    const insertUser = (db: Pool | PoolClient) =>
      db.query('INSERT INTO users (id, email, password_hash, display_name) VALUES ($1, $2, $3, $4)', [userId, body.email, passwordHash, body.displayName ?? '']);
    try {
      if (body.tenant && tenantId) {
        const tenant = body.tenant;
        // One transaction: the account, its tenant and its ownership exist together or not at all.
        await withTenant(deps.pool, { tenantId, userId, role: 'owner' }, async (client) => {
          await insertUser(client);
          // Nobody is a member of a tenant that does not exist yet: a definer function makes
          // the new tenant and its first owner (the grant bounds hold every other writer).
          await client.query('SELECT app.create_tenant_with_owner($1, $2, $3, $4)', [tenantId, tenant.slug, tenant.name, userId]);
        });
      } else {
        await insertUser(deps.pool);
      }
    } catch (error) {
      // The slug's refusal names the field; the email and slug taken answer the shared map's codes.
      if (refusingConstraint(error) === 'tenants_slug_valid') throw fail('validation_failed', 'tenant.slug: is reserved');
      throw databaseRefusal(error) ?? error;
    }
    if (tenantId) await provisionSignedUpTenant(deps, tenantId);
    await sendVerificationMail(deps, deps.pool, userId, body.email);
    const tenant = tenantId ? await pickTenant(deps.pool, userId, tenantId) : null;
    return { status: 201, body: await startSession(deps, userId, tenant, clientInfo(context)) };
  },
});

export const login = defineOperation({
  method: 'post',
  path: '/auth/login',
  summary: 'Log in with email and password; the session is scoped to the given tenant (id or slug) or the first active one',
  tag: 'session',
  auth: 'none',
  body: z.object({ email: emailSchema, password: z.string().min(1).max(PASSWORD_MAX_LENGTH), tenant: z.string().min(1).max(63).optional() }),
  responses: {
    200: { description: 'logged in', schema: sessionSchema },
    401: { description: 'email or password wrong (never says which)' },
    429: { description: 'too many failures for this email from this address, or from this address; Retry-After says when to retry' },
    503: { description: 'the login throttle (Redis) or the database is unavailable: the login fails closed' },
  },
  async handler(context) {
    const { deps, body, req } = context;
    // The client's address as the edge saw it: Express reads X-Forwarded-For only from the
    // hops AUTH_TRUST_PROXY names, and the edge replaces any client-sent X-Forwarded-For.
    const ip = req.ip ?? 'unknown';
    // Counted as a failure before the password is checked (see LoginLimiter.beginAttempt).
    const wait = await deps.limiter.beginAttempt(body.email, ip);
    if (wait > 0) return { status: 429, headers: { 'Retry-After': String(wait) }, body: { error: { code: 'too_many_attempts', message: 'too many attempts; try again later' } } };
    // users_email_key's own expression, so the lookup is an index scan; emailSchema has
    // already normalised body.email to the stored form.
    const { rows } = await deps.pool.query<{ id: string; password_hash: string | null; disabled_at: Date | null }>(
      'SELECT id, password_hash, disabled_at FROM users WHERE lower(email COLLATE "und-x-icu") = $1',
      [body.email],
    );
    const user = rows[0];
    const ok = await deps.passwords.verify(user?.password_hash ?? null, body.password);
    if (!user || !ok) throw fail('invalid_credentials');
    await deps.limiter.recordSuccess(body.email, ip);
    if (user.disabled_at) throw fail('user_disabled');
    await deps.pool.query('UPDATE users SET last_login_at = now() WHERE id = $1', [user.id]);
    const tenant = await pickTenant(deps.pool, user.id, body.tenant);
    return { body: await startSession(deps, user.id, tenant, clientInfo(context)) };
  },
});

const refreshBody = z.object({ refreshToken: z.string().min(1).max(200) });

export const refresh = defineOperation({
  method: 'post',
  path: '/auth/refresh',
  summary: 'Rotate a refresh token: a new access token and a new refresh token; reusing a spent one revokes the session',
  tag: 'session',
  auth: 'none',
  body: refreshBody,
  responses: { 200: { description: 'rotated', schema: sessionSchema }, 401: { description: 'invalid, expired, revoked or reused' } },
  async handler(context) {
    return { body: await rotateSession(context.deps, context.body.refreshToken, clientInfo(context)) };
  },
});

export const logout = defineOperation({
  method: 'post',
  path: '/auth/logout',
  summary: "Revoke the refresh token's whole session",
  tag: 'session',
  auth: 'none',
  body: refreshBody,
  responses: { 204: { description: 'logged out (also when the token was unknown)' } },
  async handler(context) {
    await revokeFamily(context.deps.pool, context.body.refreshToken);
    return { status: 204 };
  },
});

export const me = defineOperation({
  method: 'get',
  path: '/auth/me',
  summary: 'The caller: user, the tenant the token is scoped to and the role there',
  tag: 'session',
  auth: 'token',
  responses: { 200: { description: 'the caller' }, 401: { description: 'no valid access token' } },
  async handler({ deps, principal }) {
    const p = principal!;
    const { rows } = await deps.pool.query<{ id: string; email: string; display_name: string; email_verified_at: Date | null; is_staff: boolean }>(
      'SELECT id, email, display_name, email_verified_at, is_staff FROM users WHERE id = $1',
      [p.userId],
    );
    const user = rows[0];
    if (!user) throw fail('unauthenticated');
    let tenant: { id: string; role: string; permissions: string[] } | null = null;
    if (p.tenantId) {
      const member = await withTenant(deps.pool, { tenantId: p.tenantId, userId: p.userId, role: p.role ?? 'member' }, async (client) => {
        const result = await client.query<{ role: string; permissions: string[] }>({
          name: 'session-member',
          text: 'SELECT role, permissions FROM tenant_members WHERE tenant_id = $1 AND user_id = $2',
          values: [p.tenantId, p.userId],
        });
        return result.rows[0];
      });
      if (member) tenant = { id: p.tenantId, role: p.apiKeyId ? (p.role ?? member.role) : member.role, permissions: p.apiKeyId ? [] : member.permissions };
    }
    return {
      body: {
        user: { id: user.id, email: user.email, displayName: user.display_name, emailVerified: user.email_verified_at !== null, isStaff: user.is_staff },
        tenant,
        apiKeyId: p.apiKeyId,
        actor: p.actor,
      },
    };
  },
});

const tenantView = (tenant: UserTenant) => ({
  id: tenant.tenant_id,
  slug: tenant.slug,
  name: tenant.name,
  status: tenant.status,
  // `billing`: its owners may still switch to it and pay; any other reason keeps everyone out.
  suspensionReason: tenant.suspension_reason,
  role: tenant.role,
});

export const tenants = defineOperation({
  method: 'get',
  path: '/auth/tenants',
  summary: "The caller's tenants and roles (not deleted ones)",
  tag: 'tenants',
  auth: 'token',
  responses: { 200: { description: 'tenants' } },
  async handler({ deps, principal }) {
    if (principal!.apiKeyId) throw fail('api_key_not_allowed');
    return { body: { tenants: (await userTenants(deps.pool, principal!.userId)).map(tenantView) } };
  },
});

export const switchTenant = defineOperation({
  method: 'post',
  path: '/auth/switch-tenant',
  summary: 'Exchange the access token for one scoped to another active tenant of the caller; with a refresh token, the session moves too',
  tag: 'tenants',
  auth: 'token',
  body: z.object({ tenant: z.string().min(1).max(63), refreshToken: z.string().min(1).max(200).optional() }),
  responses: { 200: { description: 'a token for the tenant' }, 403: { description: 'not a member, or the tenant is not active' } },
  async handler(context) {
    const { deps, principal, body } = context;
    const p = principal!;
    if (p.apiKeyId || p.actor) throw fail('forbidden', 'API-key and impersonation tokens cannot switch tenant');
    const { rows } = await deps.pool.query<{ disabled_at: Date | null }>('SELECT disabled_at FROM users WHERE id = $1', [p.userId]);
    if (!rows[0] || rows[0].disabled_at) throw fail('unauthenticated');
    if (body.refreshToken) {
      return { body: await rotateSession(deps, body.refreshToken, clientInfo(context), { userId: p.userId, tenant: body.tenant }) };
    }
    const tenant = (await pickTenant(deps.pool, p.userId, body.tenant))!;
    return {
      body: {
        accessToken: await accessTokenFor(deps, p.userId, tenant),
        tokenType: 'Bearer',
        expiresIn: deps.tokens.ttlSeconds,
        tenant: { id: tenant.tenant_id, slug: tenant.slug, role: tenant.role },
      },
    };
  },
});

export const jwks = defineOperation({
  method: 'get',
  path: '/auth/.well-known/jwks.json',
  summary: 'The public keys access tokens are signed with (Hasura reads this as jwk_url)',
  tag: 'keys',
  auth: 'none',
  responses: { 200: { description: 'JWK set' } },
  async handler({ deps, res }) {
    res.set('Cache-Control', 'public, max-age=300');
    return { body: deps.keys.jwks() };
  },
});
