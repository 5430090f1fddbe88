/**
 * Issue 13, point 3, in the database: an API key has a role and a read-only flag (no more
 * free-form scopes), and its role is never above its creator's current role in the key's
 * tenant, whoever writes the row. The platform's audited path (platform_admin) is exempt.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hasuraSessionJson, withTenant } from '../../services/shared/src/db/tenant-context.js';
import { createUsers, dbError, hex, seedTenant, type SeededTenant } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';

const admin = poolAs('platform_admin');
const service = poolAs('app_service');
const hasura = poolAs('hasura_app');
const owner = poolAs('tenantry_owner', 2);
let T: SeededTenant;
let U: SeededTenant;

beforeAll(async () => {
  [T, U] = await Promise.all([seedTenant(admin, 'keyrole-t'), seedTenant(admin, 'keyrole-u')]);
});
afterAll(async () => {
  await Promise.all([admin.end(), service.end(), hasura.end(), owner.end()]);
});

/** An api_keys insert as the auth service makes it: app_service in the tenant's context, as `userId`. */
function insertKey(userId: string, values: { role: string; createdBy?: string | null; readOnly?: boolean }, tenantId = T.tenantId) {
  return withTenant(service, { tenantId, userId, role: 'owner' }, async (client) => {
    const columns = ['name', 'prefix', 'key_hash', 'role', 'read_only', ...(values.createdBy !== undefined ? ['created_by'] : [])];
    const params = ['attack', `ka_${hex(6)}`, `hash-${hex(8)}`, values.role, values.readOnly ?? false, ...(values.createdBy !== undefined ? [values.createdBy] : [])];
    const { rows } = await client.query<{ id: string; created_by: string; read_only: boolean }>(
      `INSERT INTO api_keys (${columns.join(', ')}) VALUES (${params.map((_, index) => `$${index + 1}`).join(', ')}) RETURNING id, created_by, read_only`,
      params,
    );
    return rows[0]!;
  });
}

const refusedByRule = (error: { code?: string; constraint?: string } | undefined) => {
  expect(error, 'expected api_keys_role_within_creator to refuse').toBeDefined();
  expect({ code: error!.code, constraint: error!.constraint }).toEqual({ code: '23514', constraint: 'api_keys_role_within_creator' });
};

describe("an API key's role is bounded by its creator's, in the database", () => {
  test('a member writing a key straight into the table cannot give it the admin or owner role', async () => {
    refusedByRule(await dbError(insertKey(T.memberUserId, { role: 'admin' })));
    refusedByRule(await dbError(insertKey(T.memberUserId, { role: 'owner', createdBy: T.memberUserId })));
    // Nor pass a key off as another tenant's owner's: the creator is always the writer.
    const foreign = await dbError(insertKey(U.ownerUserId, { role: 'owner', createdBy: T.ownerUserId }, U.tenantId));
    expect({ code: foreign?.code, constraint: foreign?.constraint }).toEqual({ code: '42501', constraint: 'api_keys_creator_is_writer' });
    // Up to the creator's own role it works, the creator defaulting to the session's user.
    const key = await insertKey(T.memberUserId, { role: 'member', readOnly: true });
    expect(key).toMatchObject({ created_by: T.memberUserId, read_only: true });
    await withTenant(service, { tenantId: T.tenantId, userId: T.memberUserId }, (client) => client.query('DELETE FROM api_keys WHERE id = $1', [key.id]));
  });

  test("a key's creator must be a member of its tenant, and the key cannot be raised later", async () => {
    const [stranger] = await createUsers(admin, 'keyrole-stranger', 1);
    refusedByRule(await dbError(insertKey(stranger!, { role: 'guest', createdBy: stranger! })));
    refusedByRule(await dbError(insertKey(T.ownerUserId, { role: 'guest', createdBy: null })));
    const key = await insertKey(T.memberUserId, { role: 'guest' });
    refusedByRule(
      await dbError(withTenant(service, { tenantId: T.tenantId, userId: T.memberUserId }, (client) => client.query("UPDATE api_keys SET role = 'admin' WHERE id = $1", [key.id]))),
    );
    // An owner's key may be owner.
    const ownerKey = await insertKey(T.ownerUserId, { role: 'owner' });
    expect(ownerKey.created_by).toBe(T.ownerUserId);
  });

  test("as Hasura would: a tenant admin's mutation cannot raise a key's role or write read_only", async () => {
    const client = await hasura.connect();
    try {
      await client.query('BEGIN');
      await client.query("SELECT set_config('hasura.user', $1, true)", [hasuraSessionJson({ tenantId: T.tenantId, userId: T.ownerUserId, role: 'tenant_admin' })]);
      const error = await dbError(client.query("UPDATE api_keys SET role = 'owner', read_only = false WHERE tenant_id = $1", [T.tenantId]));
      expect(error?.code).toBe('42501');
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  test('the platform admin (the CLI, audited) is exempt', async () => {
    const [stranger] = await createUsers(admin, 'keyrole-platform', 1);
    const { rows } = await admin.query<{ role: string }>(
      "INSERT INTO api_keys (tenant_id, name, prefix, key_hash, role, created_by) VALUES ($1, 'platform', $2, $3, 'owner', $4) RETURNING role",
      [T.tenantId, `kp_${hex(6)}`, `hash-${hex(8)}`, stranger],
    );
    expect(rows).toEqual([{ role: 'owner' }]);
  });
});

describe('the schema: scopes are gone, the lookup is a hardened definer', () => {
  test('api_keys has read_only (default false) and no scopes', async () => {
    const { rows } = await owner.query<{ column_name: string; column_default: string | null; is_nullable: string }>(
      "SELECT column_name, column_default, is_nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'api_keys' AND column_name IN ('scopes', 'read_only')",
    );
    expect(rows).toEqual([{ column_name: 'read_only', column_default: 'false', is_nullable: 'NO' }]);
  });

  test('app.api_key_by_prefix: pg_temp last, owned by app_definer, callable by app_service only', async () => {
    const { rows } = await owner.query<{ config: string[]; owner: string; secdef: boolean; public_exec: boolean; hasura_exec: boolean; service_exec: boolean }>(
      `SELECT p.proconfig AS config, pg_get_userbyid(p.proowner) AS owner, p.prosecdef AS secdef,
              has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec,
              has_function_privilege('hasura_app', p.oid, 'EXECUTE') AS hasura_exec,
              has_function_privilege('app_service', p.oid, 'EXECUTE') AS service_exec
         FROM pg_proc p WHERE p.oid = 'app.api_key_by_prefix(text)'::regprocedure`,
    );
    expect(rows).toEqual([{ config: ['search_path=pg_catalog, public, pg_temp'], owner: 'app_definer', secdef: true, public_exec: false, hasura_exec: false, service_exec: true }]);
    const lookup = await (service as pg.Pool).query<{ read_only: boolean; creator_role: string; creator_tokens_valid_after: Date }>(
      'SELECT read_only, creator_role, creator_tokens_valid_after FROM app.api_key_by_prefix($1)',
      [T.apiKeyPrefix],
    );
    expect(lookup.rows).toEqual([{ read_only: true, creator_role: 'owner', creator_tokens_valid_after: expect.any(Date) }]);
  });
});

/**
 * The creator bounds the key's role, so the creator must be the writer: otherwise an admin
 * names the owner as created_by and mints an owner key. And a key's creator and secret are
 * fixed: swapping the hash of the owner's key for one the writer knows is the same theft.
 */
describe("an API key's creator is the one who writes it", () => {
  const creatorIsWriter = (error: { code?: string; constraint?: string; message?: string } | undefined) => {
    expect(error, 'expected api_keys_creator_is_writer to refuse').toBeDefined();
    expect({ code: error!.code, constraint: error!.constraint }, error!.message).toEqual({ code: '42501', constraint: 'api_keys_creator_is_writer' });
  };
  let adminUserId: string;
  beforeAll(async () => {
    [adminUserId] = (await createUsers(admin, 'keyrole-admin', 1)) as [string];
    await admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'admin')", [T.tenantId, adminUserId]);
  });
  const asAdmin = <R>(work: (client: pg.PoolClient) => Promise<R>) => withTenant(service, { tenantId: T.tenantId, userId: adminUserId, role: 'admin' }, work);
  const keyRow = async (id: string) =>
    (await admin.query<{ role: string; created_by: string; key_hash: string }>('SELECT role, created_by, key_hash FROM api_keys WHERE id = $1', [id])).rows[0];

  test('an admin inserts an owner key naming the owner as its creator: refused', async () => {
    const ownerKeys = async () =>
      (await admin.query('SELECT id FROM api_keys WHERE tenant_id = $1 AND created_by = $2 ORDER BY id', [T.tenantId, T.ownerUserId])).rows;
    const before = await ownerKeys();
    creatorIsWriter(await dbError(insertKey(adminUserId, { role: 'owner', createdBy: T.ownerUserId })));
    // Naming anyone else, even at a role the admin holds: refused too.
    creatorIsWriter(await dbError(insertKey(adminUserId, { role: 'guest', createdBy: T.memberUserId })));
    expect(await ownerKeys()).toEqual(before);
  });

  test('an admin re-assigns their own key to the owner and raises it: refused', async () => {
    const key = await insertKey(adminUserId, { role: 'admin' });
    creatorIsWriter(await dbError(asAdmin((client) => client.query("UPDATE api_keys SET created_by = $2, role = 'owner' WHERE id = $1", [key.id, T.ownerUserId]))));
    creatorIsWriter(await dbError(asAdmin((client) => client.query('UPDATE api_keys SET created_by = $2 WHERE id = $1', [key.id, T.ownerUserId]))));
    expect(await keyRow(key.id)).toMatchObject({ role: 'admin', created_by: adminUserId });
  });

  test("an admin swaps the hash of the owner's key for one they know: refused", async () => {
    const ownerKey = await insertKey(T.ownerUserId, { role: 'owner' });
    const before = await keyRow(ownerKey.id);
    creatorIsWriter(await dbError(asAdmin((client) => client.query('UPDATE api_keys SET key_hash = $2, revoked_at = NULL WHERE id = $1', [ownerKey.id, `hash-${hex(8)}`]))));
    creatorIsWriter(await dbError(asAdmin((client) => client.query('UPDATE api_keys SET prefix = $2 WHERE id = $1', [ownerKey.id, `ka_${hex(6)}`]))));
    expect(await keyRow(ownerKey.id)).toEqual(before);
  });

  test('legitimate: a key made by its writer, revoked by an admin, touched on use', async () => {
    const key = await insertKey(adminUserId, { role: 'admin', createdBy: adminUserId });
    expect(key.created_by).toBe(adminUserId);
    const ownerKey = await insertKey(T.ownerUserId, { role: 'owner' });
    await asAdmin((client) => client.query('UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), last_used_at = now() WHERE id = ANY($1)', [[key.id, ownerKey.id]]));
    const { rows } = await admin.query('SELECT count(*)::int AS revoked FROM api_keys WHERE id = ANY($1) AND revoked_at IS NOT NULL', [[key.id, ownerKey.id]]);
    expect(rows).toEqual([{ revoked: 2 }]);
  });

  test('deleting the creator still empties created_by (the foreign key runs as the table owner)', async () => {
    const [leaver] = (await createUsers(admin, 'keyrole-leaver', 1)) as [string];
    await admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'member')", [T.tenantId, leaver]);
    const key = await insertKey(leaver, { role: 'member' });
    await admin.query('DELETE FROM users WHERE id = $1', [leaver]);
    expect(await keyRow(key.id)).toMatchObject({ created_by: null });
  });
});
