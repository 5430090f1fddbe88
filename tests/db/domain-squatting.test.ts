/**
 * Domain squatting (issue 13, point 7), attacked at the database the way Hasura reaches
 * it: role hasura_app, `hasura.user` set with SET LOCAL exactly as graphql-engine sets it
 * in a mutation, for a tenant_admin of the attacking tenant A. B is the domain's real
 * owner. Verification itself is the CLI's statement, run as platform_admin after its DNS
 * check (`tenantry domain verify`).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hasuraSessionJson, withTenant } from '../../services/shared/src/db/tenant-context.js';
import { dbError, hex, uniqueSlug } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';

const admin = poolAs('platform_admin');
const service = poolAs('app_service');
const hasura = poolAs('hasura_app');

interface Tenant {
  tenantId: string;
  ownerUserId: string;
}
let A: Tenant;
let B: Tenant;

/** A tenant, its owner and a verified primary domain: just what these attacks need. */
async function tenantWithOwner(label: string): Promise<Tenant> {
  const slug = uniqueSlug(label);
  const { rows } = await admin.query<{ tenant_id: string; user_id: string }>(
    `WITH owner AS (INSERT INTO users (email) VALUES ($2) RETURNING id),
          tenant AS (INSERT INTO tenants (slug, name, owner_user_id, plan_id) SELECT $1, $1, id, 'starter' FROM owner RETURNING id),
          member AS (INSERT INTO tenant_members (tenant_id, user_id, role) SELECT tenant.id, owner.id, 'owner' FROM tenant, owner),
          domain AS (INSERT INTO tenant_domains (tenant_id, domain, is_primary, verified_at) SELECT id, $3, true, now() FROM tenant)
     SELECT tenant.id AS tenant_id, owner.id AS user_id FROM tenant, owner`,
    [slug, `owner-${slug}@example.test`, `${slug}.example.test`],
  );
  return { tenantId: rows[0]!.tenant_id, ownerUserId: rows[0]!.user_id };
}

beforeAll(async () => {
  [A, B] = await Promise.all([tenantWithOwner('squat-a'), tenantWithOwner('squat-b')]);
});

afterAll(async () => {
  await Promise.all([admin.end(), service.end(), hasura.end()]);
});

/** One GraphQL mutation's transaction as a tenant_admin of `tenant`: Hasura's SET LOCAL, verbatim. */
async function asHasuraAdmin<T>(tenant: Tenant, statement: string, params: unknown[] = []): Promise<pg.QueryResult<T & pg.QueryResultRow>> {
  const client = await hasura.connect();
  try {
    await client.query('BEGIN');
    const session = hasuraSessionJson({ tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'tenant_admin' });
    await client.query(`SET LOCAL "hasura.user" = ${pg.escapeLiteral(session)}`);
    const result = await client.query<T & pg.QueryResultRow>(statement, params);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** What Hasura's insert_tenant_domains_one sends: domain and is_primary, tenant_id preset from the session. */
const claimThroughGraphql = (tenant: Tenant, domain: string) =>
  asHasuraAdmin(tenant, 'INSERT INTO tenant_domains (tenant_id, domain, is_primary) VALUES ($1, $2, false) RETURNING id', [tenant.tenantId, domain]);

/** `tenantry domain verify`'s statement, once the TXT record matched. */
const verify = (tenant: Tenant, domain: string) =>
  admin.query('UPDATE tenant_domains SET verified_at = now() WHERE tenant_id = $1 AND domain = $2 RETURNING id', [tenant.tenantId, domain]);

async function claims(domain: string): Promise<Array<{ tenant_id: string; verified: boolean }>> {
  const { rows } = await admin.query<{ tenant_id: string; verified: boolean }>(
    'SELECT tenant_id, verified_at IS NOT NULL AS verified FROM tenant_domains WHERE domain = $1 ORDER BY verified DESC, tenant_id',
    [domain],
  );
  return rows;
}

async function resolvedTenant(domain: string): Promise<string | null> {
  const { rows } = await service.query<{ id: string }>('SELECT id FROM app.resolve_tenant_by_domain($1)', [domain]);
  return rows[0]?.id ?? null;
}

describe('domain squatting through GraphQL', () => {
  test("A's unverified claim on B's domain does not keep B from adding it; B verifies, A's claim goes, the domain resolves to B", async () => {
    const domain = `shop-${hex()}.example.test`;
    await claimThroughGraphql(A, domain);
    expect(await dbError(claimThroughGraphql(B, domain)), 'B must be able to add a domain A only claimed').toBeUndefined();
    expect(await resolvedTenant(domain), 'an unverified domain resolves to nobody').toBeNull();

    expect((await verify(B, domain)).rowCount).toBe(1);
    expect(await claims(domain)).toEqual([{ tenant_id: B.tenantId, verified: true }]);
    expect(await resolvedTenant(domain)).toBe(B.tenantId);

    // A's lost claim is on record in A's own audit log.
    const { rows: audit } = await admin.query<{ action: string }>(
      "SELECT action FROM audit_log WHERE tenant_id = $1 AND target_type = 'tenant_domains' AND target_id = $2 ORDER BY id",
      [A.tenantId, domain],
    );
    expect(audit.map((row) => row.action)).toEqual(['tenant_domains.insert', 'tenant_domains.delete']);
  });

  test('the first tenant to verify keeps the domain: A may claim it again, but verifying it fails on the verified-domain index', async () => {
    const domain = `first-${hex()}.example.test`;
    await claimThroughGraphql(B, domain);
    await verify(B, domain);
    await claimThroughGraphql(A, domain);
    const error = await dbError(verify(A, domain));
    expect(error?.code).toBe('23505');
    expect(error?.constraint).toBe('tenant_domains_verified_domain_key');
    expect(await claims(domain)).toEqual([
      { tenant_id: B.tenantId, verified: true },
      { tenant_id: A.tenantId, verified: false },
    ]);
    expect(await resolvedTenant(domain)).toBe(B.tenantId);
  });

  test("two verifications racing: the second waits for the first and finds its claim gone", async () => {
    const domain = `race-${hex()}.example.test`;
    await claimThroughGraphql(A, domain);
    await claimThroughGraphql(B, domain);
    const first = await admin.connect();
    const second = await admin.connect();
    try {
      await first.query('BEGIN');
      await first.query('UPDATE tenant_domains SET verified_at = now() WHERE tenant_id = $1 AND domain = $2', [B.tenantId, domain]);
      await second.query('BEGIN');
      // Blocks on A's row, which B's verification deleted; sees it gone once B commits.
      const racing = second.query('UPDATE tenant_domains SET verified_at = now() WHERE tenant_id = $1 AND domain = $2', [A.tenantId, domain]);
      await first.query('COMMIT');
      expect((await racing).rowCount).toBe(0);
      await second.query('COMMIT');
    } finally {
      await second.query('ROLLBACK').catch(() => undefined);
      first.release();
      second.release();
    }
    expect(await claims(domain)).toEqual([{ tenant_id: B.tenantId, verified: true }]);
    expect(await resolvedTenant(domain)).toBe(B.tenantId);
  });

  test('a tenant claims a domain once', async () => {
    const domain = `twice-${hex()}.example.test`;
    await claimThroughGraphql(A, domain);
    const error = await dbError(claimThroughGraphql(A, domain));
    expect(error?.code).toBe('23505');
    expect(error?.constraint).toBe('tenant_domains_tenant_id_domain_key');
  });
});

describe('verification cannot be skipped through GraphQL', () => {
  const PERMISSION_DENIED = '42501';

  test.each([
    ['sets verified_at on its claim', (id: string) => [`UPDATE tenant_domains SET verified_at = now() WHERE id = $1`, [id]] as const],
    ['picks its own verification token', (id: string) => [`UPDATE tenant_domains SET verification_token = 'chosen' WHERE id = $1`, [id]] as const],
    ['renames its verified domain to the claimed one', (id: string) => [`UPDATE tenant_domains SET domain = (SELECT domain FROM tenant_domains WHERE id = $1) || '.x.test' WHERE is_primary`, [id]] as const],
  ])('tenant_admin of A %s: permission denied', async (_, statement) => {
    const domain = `skip-${hex()}.example.test`;
    const { rows } = await claimThroughGraphql(A, domain);
    const [sql, params] = statement(rows[0]!.id as string);
    const error = await dbError(asHasuraAdmin(A, sql, [...params]));
    expect(error?.code, error?.message).toBe(PERMISSION_DENIED);
    expect(await claims(domain)).toEqual([{ tenant_id: A.tenantId, verified: false }]);
    expect(await resolvedTenant(domain)).toBeNull();
  });

  test('tenant_admin of A inserts a domain already verified: permission denied', async () => {
    const domain = `preverified-${hex()}.example.test`;
    const error = await dbError(
      asHasuraAdmin(A, 'INSERT INTO tenant_domains (tenant_id, domain, verified_at) VALUES ($1, $2, now())', [A.tenantId, domain]),
    );
    expect(error?.code, error?.message).toBe(PERMISSION_DENIED);
    expect(await claims(domain)).toEqual([]);
    expect(await resolvedTenant(domain)).toBeNull();
  });

  test('what Hasura may do still works: claim a domain, flip is_primary, delete it', async () => {
    const domain = `allowed-${hex()}.example.test`;
    const { rows } = await claimThroughGraphql(A, domain);
    const id = rows[0]!.id as string;
    expect((await asHasuraAdmin(A, 'UPDATE tenant_domains SET is_primary = false WHERE id = $1', [id])).rowCount).toBe(1);
    expect((await asHasuraAdmin(A, 'DELETE FROM tenant_domains WHERE id = $1', [id])).rowCount).toBe(1);
    expect(await claims(domain)).toEqual([]);
  });
});

test('the definer that removes rival claims is owned by app_definer, pins pg_temp last and is not PUBLIC', async () => {
  const { rows } = await admin.query<{ owner: string; config: string[]; public_execute: boolean; definer: boolean }>(
    `SELECT p.proowner::regrole::text AS owner, p.proconfig AS config, p.prosecdef AS definer,
            has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
       FROM pg_proc p WHERE p.oid = 'app.remove_rival_domain_claims()'::regprocedure`,
  );
  expect(rows[0]).toEqual({ owner: 'app_definer', config: ['search_path=pg_catalog, public, pg_temp'], definer: true, public_execute: false });
});

/** The services' role, with an admin session of A: it held table-wide INSERT and UPDATE. */
async function asServiceAdmin<T>(tenant: Tenant, statement: string, params: unknown[] = []): Promise<pg.QueryResult<T & pg.QueryResultRow>> {
  return withTenant(service, { tenantId: tenant.tenantId, userId: tenant.ownerUserId, role: 'admin' }, (client) => client.query<T & pg.QueryResultRow>(statement, params));
}

describe('verification cannot be skipped as app_service either', () => {
  test("A renames its verified primary domain to B's claimed one: refused, and B's claim stays", async () => {
    const domain = `renamed-${hex()}.example.test`;
    await claimThroughGraphql(B, domain);
    const error = await dbError(asServiceAdmin(A, 'UPDATE tenant_domains SET domain = $1 WHERE tenant_id = $2 AND is_primary', [domain, A.tenantId]));
    expect(error?.code, error?.message).toBe('42501');
    expect(await claims(domain)).toEqual([{ tenant_id: B.tenantId, verified: false }]);
    expect(await resolvedTenant(domain)).toBeNull();
  });

  test('A inserts a domain already verified, or verifies its claim: refused', async () => {
    const domain = `service-preverified-${hex()}.example.test`;
    const inserted = await dbError(asServiceAdmin(A, 'INSERT INTO tenant_domains (tenant_id, domain, verified_at) VALUES ($1, $2, now())', [A.tenantId, domain]));
    expect(inserted?.code, inserted?.message).toBe('42501');
    await claimThroughGraphql(A, domain);
    const verified = await dbError(asServiceAdmin(A, 'UPDATE tenant_domains SET verified_at = now() WHERE tenant_id = $1 AND domain = $2', [A.tenantId, domain]));
    expect(verified?.code, verified?.message).toBe('42501');
    expect(await claims(domain)).toEqual([{ tenant_id: A.tenantId, verified: false }]);
  });

  test('a verified domain keeps its name for every writer but the platform; the platform may rename it', async () => {
    const { rows: triggers } = await admin.query<{ tgname: string }>(
      "SELECT tgname FROM pg_trigger WHERE tgrelid = 'tenant_domains'::regclass AND tgname = 'tenant_domains_verified_name'",
    );
    expect(triggers).toHaveLength(1);
    const from = `platform-${hex()}.example.test`;
    const to = `platform-${hex()}.example.test`;
    await admin.query('INSERT INTO tenant_domains (tenant_id, domain, verified_at) VALUES ($1, $2, now())', [A.tenantId, from]);
    await admin.query('UPDATE tenant_domains SET domain = $2 WHERE domain = $1', [from, to]);
    expect(await claims(to)).toEqual([{ tenant_id: A.tenantId, verified: true }]);
    await admin.query('DELETE FROM tenant_domains WHERE domain = $1', [to]);
  });

  test('what a tenant may do still works as app_service: claim a domain, flip is_primary, delete it', async () => {
    const domain = `service-allowed-${hex()}.example.test`;
    const { rows } = await asServiceAdmin<{ id: string }>(A, 'INSERT INTO tenant_domains (domain) VALUES ($1) RETURNING id', [domain]);
    const id = rows[0]!.id;
    expect((await asServiceAdmin(A, 'UPDATE tenant_domains SET is_primary = false WHERE id = $1', [id])).rowCount).toBe(1);
    expect((await asServiceAdmin(A, 'DELETE FROM tenant_domains WHERE id = $1', [id])).rowCount).toBe(1);
    expect(await claims(domain)).toEqual([]);
  });
});
