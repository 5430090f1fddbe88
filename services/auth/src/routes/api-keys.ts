import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { withTenant } from '../../../shared/src/db/tenant-context.js';
import { fail } from '../../../shared/src/errors/catalog.js';
import { databaseRefusal, refusingConstraint } from '../../../shared/src/errors/database.js';
import { ROLES } from '../../../shared/src/roles.js';
import { defineOperation } from '../http.js';
import { ROLE_RANK, type Role } from '../../../shared/src/permissions.js';
import { hashToken, sameSecret } from '../../../shared/src/secrets.js';
import { actingMember, authorize, inTenant } from '../tenant-access.js';

/** `tnt_<prefix>_<secret>`: the prefix (public, unique) finds the row, the whole key is compared by hash. */
const API_KEY = /^tnt_([a-f0-9]{18})_([A-Za-z0-9_-]{43})$/;

export function newApiKey(): { key: string; prefix: string } {
  const prefix = randomBytes(9).toString('hex');
  return { key: `tnt_${prefix}_${randomBytes(32).toString('base64url')}`, prefix };
}

const apiKeySchema = z.object({
  id: z.uuid(),
  name: z.string(),
  prefix: z.string(),
  role: z.enum(ROLES),
  readOnly: z.boolean(),
  expiresAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  createdAt: z.string(),
});

interface ApiKeyRow {
  id: string;
  name: string;
  prefix: string;
  role: Role;
  read_only: boolean;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  created_at: Date;
}

const COLUMNS = 'id, name, prefix, role, read_only, expires_at, revoked_at, last_used_at, created_at';
const iso = (value: Date | null) => value?.toISOString() ?? null;
const view = (row: ApiKeyRow) => ({
  id: row.id,
  name: row.name,
  prefix: row.prefix,
  role: row.role,
  readOnly: row.read_only,
  expiresAt: iso(row.expires_at),
  revokedAt: iso(row.revoked_at),
  lastUsedAt: iso(row.last_used_at),
  createdAt: row.created_at.toISOString(),
});

export const createApiKey = defineOperation({
  method: 'post',
  path: '/auth/api-keys',
  summary:
    "Create an API key for the tenant (settings:write); the key is in this answer only. Its token acts with the key's role (never above its creator's current one); a readOnly key's token carries the role's read-only Hasura role, which may select and never write",
  tag: 'api-keys',
  auth: 'token',
  // Strict: a field this API does not know (such as the former `scopes`) is refused, never
  // dropped in silence, so no client believes a key is limited by something nothing enforces.
  body: z.strictObject({
    name: z.string().trim().min(1).max(200),
    role: z.enum(ROLES).default('member'),
    readOnly: z.boolean().default(false),
    expiresAt: z.iso.datetime({ offset: true }).refine((value) => Date.parse(value) > Date.now(), 'must be in the future').optional(),
  }),
  responses: {
    201: { description: 'created; `key` is shown once', schema: apiKeySchema.extend({ key: z.string() }) },
    403: { description: "missing settings:write, a role above yours, or the tenant's plan does not include API keys (feature_not_in_plan)" },
    422: { description: 'invalid or unknown fields (there are no scopes: use role and readOnly)' },
  },
  async handler(context) {
    const acting = await actingMember(context);
    authorize(acting, 'settings:write');
    const { body } = context;
    if (ROLE_RANK[body.role] > ROLE_RANK[acting.member.role]) throw fail('forbidden', 'a key cannot have a role above yours');
    if (body.role === 'owner') authorize(acting, 'owners:write');
    const { key, prefix } = newApiKey();
    const row = await inTenant(context.deps, acting, async (client) => {
      const { rows } = await client.query<ApiKeyRow>(
        `INSERT INTO api_keys (tenant_id, name, prefix, key_hash, role, read_only, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${COLUMNS}`,
        [acting.tenantId, body.name, prefix, hashToken(key), body.role, body.readOnly, acting.userId, body.expiresAt ?? null],
      );
      return rows[0]!;
    }).catch((error: unknown) => {
      // The database holds the same rule for every writer; it speaks when the role changed
      // between the check above and the insert.
      if (refusingConstraint(error) === 'api_keys_role_within_creator') throw fail('forbidden', 'a key cannot have a role above yours');
      // A plan without `api_keys` (feature_not_in_plan), and every other rule the database holds.
      throw databaseRefusal(error) ?? error;
    });
    return { status: 201, body: { ...view(row), key } };
  },
});

export const listApiKeys = defineOperation({
  method: 'get',
  path: '/auth/api-keys',
  summary: "The tenant's API keys, without secrets (settings:read)",
  tag: 'api-keys',
  auth: 'token',
  responses: { 200: { description: 'keys', schema: z.object({ apiKeys: z.array(apiKeySchema) }) } },
  async handler(context) {
    const acting = await actingMember(context);
    authorize(acting, 'settings:read');
    const rows = await inTenant(context.deps, acting, async (client) => (await client.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at`, [acting.tenantId])).rows);
    return { body: { apiKeys: rows.map(view) } };
  },
});

export const revokeApiKey = defineOperation({
  method: 'delete',
  path: '/auth/api-keys/:id',
  summary: 'Revoke an API key (settings:write); tokens already exchanged live out their ≤15 minutes',
  tag: 'api-keys',
  auth: 'token',
  params: z.object({ id: z.uuid() }),
  responses: { 204: { description: 'revoked' }, 404: { description: 'no such key in this tenant' } },
  async handler(context) {
    const acting = await actingMember(context);
    authorize(acting, 'settings:write');
    const found = await inTenant(context.deps, acting, async (client) => {
      const { rowCount } = await client.query('UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE tenant_id = $1 AND id = $2', [acting.tenantId, context.params.id]);
      return (rowCount ?? 0) > 0;
    });
    if (!found) throw fail('api_key_not_found');
    return { status: 204 };
  },
});

interface KeyLookup {
  id: string;
  tenant_id: string;
  tenant_slug: string;
  tenant_status: string;
  key_hash: string;
  role: Role;
  read_only: boolean;
  created_by: string | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  creator_role: Role | null;
  creator_tokens_valid_after: Date | null;
}

/** last_used_at is kept to the minute: the exchange stays one query on the hot path. */
const LAST_USED_RESOLUTION_MS = 60_000;

export const exchangeApiKey = defineOperation({
  method: 'post',
  path: '/auth/token',
  summary: 'Exchange an API key for a short-lived access token of its tenant; X-Tenant-Slug / X-Tenant-Id, when sent, must name that tenant',
  tag: 'api-keys',
  auth: 'none',
  body: z.object({ apiKey: z.string().min(1).max(200) }),
  responses: {
    200: {
      description: "an access token; readOnly: it carries the role's read-only Hasura role",
      schema: z.object({ accessToken: z.string(), tokenType: z.literal('Bearer'), expiresIn: z.number(), readOnly: z.boolean(), tenant: z.object({ id: z.uuid(), slug: z.string(), role: z.enum(ROLES) }) }),
    },
    401: { description: 'unknown, revoked or expired key' },
    403: { description: 'the tenant is not active, or is not the one named by the headers' },
  },
  async handler({ deps, body, req }) {
    const match = API_KEY.exec(body.apiKey);
    if (!match) throw fail('invalid_api_key');
    const presented = hashToken(body.apiKey);
    const headerSlug = req.get('x-tenant-slug');
    const headerId = req.get('x-tenant-id');
    const { token, state } = await deps.tokens.signFresh(async () => {
      const { rows } = await deps.pool.query<KeyLookup>({
        name: 'api-key-by-prefix',
        // Columns named, not *: a named statement must keep its result type across migrations.
        text: `SELECT id, tenant_id, tenant_slug, tenant_status, key_hash, role, read_only, created_by, expires_at, revoked_at, last_used_at, creator_role, creator_tokens_valid_after
               FROM app.api_key_by_prefix($1)`,
        values: [match[1]],
      });
      const key = rows[0];
      if (!key || !sameSecret(presented, key.key_hash)) throw fail('invalid_api_key');
      if (key.revoked_at || (key.expires_at && key.expires_at.getTime() <= Date.now())) throw fail('invalid_api_key');
      if ((headerSlug !== undefined && headerSlug !== key.tenant_slug) || (headerId !== undefined && headerId !== key.tenant_id)) throw fail('tenant_mismatch');
      if (key.tenant_status !== 'active') throw fail('tenant_inactive');
      // The token acts for the key's creator (sub and x-hasura-user-id), so the edge's per-member
      // checks apply to it, and never with a role above the creator's current one.
      const createdBy = key.created_by;
      if (!createdBy) throw fail('invalid_api_key', "the key's creator no longer exists");
      const creatorRole = key.creator_role;
      if (!creatorRole) throw fail('invalid_api_key', "the key's creator is no longer a member");
      const role = ROLE_RANK[key.role] <= ROLE_RANK[creatorRole] ? key.role : creatorRole;
      return {
        key,
        subject: { userId: createdBy, tenant: { id: key.tenant_id, role }, apiKeyId: key.id, readOnly: key.read_only },
        validAfter: key.creator_tokens_valid_after,
      };
    });
    const { key, subject } = state;
    if (!key.last_used_at || Date.now() - key.last_used_at.getTime() >= LAST_USED_RESOLUTION_MS) {
      await withTenant(deps.pool, { tenantId: key.tenant_id, userId: subject.userId, role: subject.tenant.role }, (client) =>
        client.query({ name: 'api-key-touch', text: 'UPDATE api_keys SET last_used_at = now() WHERE id = $1', values: [key.id] }),
      );
    }
    return {
      body: {
        accessToken: token,
        tokenType: 'Bearer',
        expiresIn: deps.tokens.ttlSeconds,
        readOnly: key.read_only,
        tenant: { id: key.tenant_id, slug: key.tenant_slug, role: subject.tenant.role },
      },
    };
  },
});
