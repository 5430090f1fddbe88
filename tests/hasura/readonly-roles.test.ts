/**
 * Attacks on "read-only" (issue 13, points 3 and 4): an API key's scopes that nothing
 * enforced, and staff impersonation tokens that carried the member's own, writing, role.
 * Hasura cannot run here: the generated metadata and its lint are the contract Hasura
 * enforces, and the tokens must name the roles that contract makes read-only.
 */
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generateMetadata } from '../../scripts/hasura/generate-metadata.js';
import { lintMetadata, loadTables, type TableMetadata } from '../../scripts/hasura/metadata-lint.js';
import { services } from '../helpers/database.js';
import { bearer, decode, expectError, signUp, startHarness, type Harness, type SignedUp } from '../auth/harness.js';

const READ_ONLY_ROLES = ['owner_readonly', 'tenant_admin_readonly', 'member_readonly', 'guest_readonly'];
const CLAIMS = 'https://hasura.io/jwt/claims';
const hasuraRole = (token: string) => (decode(token)[CLAIMS] as Record<string, unknown>)['x-hasura-default-role'];
const allowedRoles = (token: string) => (decode(token)[CLAIMS] as Record<string, unknown>)['x-hasura-allowed-roles'];

describe('the generated metadata: read-only roles read what their base role reads and write nothing', () => {
  const tables = loadTables();

  test('no *_readonly role has an insert, update or delete permission on any table', () => {
    const writers = tables.flatMap((table) =>
      (['insert_permissions', 'update_permissions', 'delete_permissions'] as const).flatMap((kind) =>
        (table[kind] ?? []).filter((entry) => entry.role.endsWith('_readonly')).map((entry) => `${table.table.name}/${kind}/${entry.role}`),
      ),
    );
    expect(writers).toEqual([]);
  });

  test("every read-only role exists, with exactly its base role's select permission on every table", () => {
    const seen = new Set<string>();
    for (const table of tables) {
      const selects = new Map((table.select_permissions ?? []).map((entry) => [entry.role, entry.permission]));
      for (const [role, permission] of selects) {
        if (role.endsWith('_readonly')) {
          seen.add(role);
          expect(selects.get(role.slice(0, -'_readonly'.length)), `${table.table.name}/${role}`).toEqual(permission);
        } else if (role !== 'anonymous') {
          expect(selects.get(`${role}_readonly`), `${table.table.name}/${role}_readonly`).toEqual(permission);
        }
      }
    }
    expect([...seen].sort()).toEqual([...READ_ONLY_ROLES].sort());
    // …and the member's read-only twin reads projects, so a read-only key is useful at all.
    expect([...generateMetadata().values()].join('\n')).toMatch(/role: member_readonly/);
  });

  test('api_keys show read_only and no longer promise scopes', () => {
    const apiKeys = tables.find((table) => table.table.name === 'api_keys')!;
    for (const { permission } of apiKeys.select_permissions!) {
      expect(permission.columns).toContain('read_only');
      expect(permission.columns).not.toContain('scopes');
    }
  });
});

describe('the metadata lint refuses a read-only role that writes or reads differently', () => {
  let client: pg.Client;
  beforeAll(async () => {
    client = new pg.Client({ connectionString: services().urls.tenantry_owner });
    await client.connect();
  });
  afterAll(() => client.end());

  const mutated = (mutate: (tables: Map<string, TableMetadata>) => void): TableMetadata[] => {
    const tables = structuredClone(loadTables());
    mutate(new Map(tables.map((table) => [table.table.name, table])));
    return tables;
  };

  test('member_readonly given the update permission of member on projects', async () => {
    const problems = await lintMetadata(
      client,
      mutated((tables) => {
        const projects = tables.get('projects')!;
        const update = projects.update_permissions!.find((entry) => entry.role === 'member')!;
        projects.update_permissions!.push({ role: 'member_readonly', permission: structuredClone(update.permission) });
      }),
    );
    expect(problems).toEqual([expect.objectContaining({ table: 'projects', role: 'member_readonly', rule: 'read-only-write' })]);
  });

  test('owner_readonly inserting members, guest_readonly deleting domains', async () => {
    const problems = await lintMetadata(
      client,
      mutated((tables) => {
        const members = tables.get('tenant_members')!;
        members.insert_permissions!.push({ role: 'owner_readonly', permission: structuredClone(members.insert_permissions!.find((entry) => entry.role === 'owner')!.permission) });
        tables.get('tenant_domains')!.delete_permissions!.push({ role: 'guest_readonly', permission: { filter: { tenant_id: { _eq: 'X-Hasura-Tenant-Id' } } } });
      }),
    );
    expect(problems.map((problem) => `${problem.table}/${problem.role}/${problem.rule}`).sort()).toEqual([
      'tenant_domains/guest_readonly/read-only-write',
      'tenant_members/owner_readonly/read-only-write',
    ]);
  });

  test("a read-only role's select that differs from its base role's, or is missing", async () => {
    const problems = await lintMetadata(
      client,
      mutated((tables) => {
        const projects = tables.get('projects')!;
        const guestReadOnly = projects.select_permissions!.find((entry) => entry.role === 'guest_readonly')!;
        guestReadOnly.permission.filter = {};
        const audit = tables.get('audit_log')!;
        audit.select_permissions = audit.select_permissions!.filter((entry) => entry.role !== 'tenant_admin_readonly');
      }),
    );
    const differs = problems.filter((problem) => problem.rule === 'read-only-select-differs').map((problem) => `${problem.table}/${problem.role}`);
    expect(differs.sort()).toEqual(['audit_log/tenant_admin_readonly', 'projects/guest_readonly']);
  });
});

describe('tokens: read-only keys and impersonation carry the read-only Hasura role', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(() => h.close());

  async function staffUser(): Promise<SignedUp> {
    const staff = await signUp(h.app, 'rostaff', false);
    await h.admin.query('UPDATE users SET is_staff = true WHERE id = $1', [staff.userId]);
    return staff;
  }

  /** API keys need a plan with `api_keys`; a signed-up tenant starts on free. */
  const withApiKeys = (tenantId: string) => h.admin.query("UPDATE tenants SET plan_id = 'starter' WHERE id = $1", [tenantId]);

  test('creating a key with scopes is refused, not silently ignored', async () => {
    const owner = await signUp(h.app, 'roscope');
    const answer = await request(h.app).post('/auth/api-keys').set(bearer(owner.accessToken)).send({ name: 'ci', role: 'member', scopes: ['projects:read'] });
    expect(answer.status).toBe(422);
    expectError(answer.body, 'validation_failed');
    expect(answer.body.error.message).toMatch(/scopes/);
    expect((await h.admin.query('SELECT 1 FROM api_keys WHERE tenant_id = $1', [owner.tenantId])).rowCount).toBe(0);
  });

  test("a read-only key's token is member_readonly, claims no scopes, and changes nothing on /auth", async () => {
    const owner = await signUp(h.app, 'rokey');
    await withApiKeys(owner.tenantId!);
    const created = await request(h.app).post('/auth/api-keys').set(bearer(owner.accessToken)).send({ name: 'reports', role: 'member', readOnly: true }).expect(201);
    expect(created.body).toMatchObject({ role: 'member', readOnly: true });
    expect(created.body).not.toHaveProperty('scopes');
    const exchanged = await request(h.app).post('/auth/token').send({ apiKey: created.body.key }).expect(200);
    const token = exchanged.body.accessToken as string;
    expect(hasuraRole(token)).toBe('member_readonly');
    expect(allowedRoles(token)).toEqual(['member_readonly']);
    expect(JSON.stringify(decode(token))).not.toMatch(/scopes/);
    expect(exchanged.body).toMatchObject({ readOnly: true, tenant: { role: 'member' } });
    for (const [path, body] of [
      ['/auth/api-keys', { name: 'escalate' }],
      ['/auth/members', { email: 'someone@example.test', role: 'member' }],
      ['/auth/switch-tenant', { tenant: owner.slug }],
      ['/auth/invitations', { email: 'someone@example.test', role: 'member' }],
    ] as const) {
      expect((await request(h.app).post(path).set(bearer(token)).send(body)).status, path).toBe(403);
    }
    // A writing key of the same creator still carries the writing role.
    const writer = await request(h.app).post('/auth/api-keys').set(bearer(owner.accessToken)).send({ name: 'ci', role: 'member' }).expect(201);
    expect(writer.body.readOnly).toBe(false);
    expect(hasuraRole((await request(h.app).post('/auth/token').send({ apiKey: writer.body.key }).expect(200)).body.accessToken)).toBe('member');
  });

  test("a read-only key capped by its creator's demotion stays read-only", async () => {
    const owner = await signUp(h.app, 'rocap');
    await withApiKeys(owner.tenantId!);
    const admin = await signUp(h.app, 'rocapadm', false);
    await h.admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'admin')", [owner.tenantId, admin.userId]);
    const adminToken = (await request(h.app).post('/auth/switch-tenant').set(bearer(admin.accessToken)).send({ tenant: owner.slug }).expect(200)).body.accessToken as string;
    const created = await request(h.app).post('/auth/api-keys').set(bearer(adminToken)).send({ name: 'audit', role: 'admin', readOnly: true }).expect(201);
    expect(hasuraRole((await request(h.app).post('/auth/token').send({ apiKey: created.body.key }).expect(200)).body.accessToken)).toBe('tenant_admin_readonly');
    await h.admin.query("UPDATE tenant_members SET role = 'guest' WHERE tenant_id = $1 AND user_id = $2", [owner.tenantId, admin.userId]);
    expect(hasuraRole((await request(h.app).post('/auth/token').send({ apiKey: created.body.key }).expect(200)).body.accessToken)).toBe('guest_readonly');
  });

  test('impersonating an owner yields owner_readonly only; the token is refused on every POST of /auth', async () => {
    const staff = await staffUser();
    const owner = await signUp(h.app, 'roimp');
    const answer = await request(h.app)
      .post('/auth/staff/impersonate')
      .set(bearer(staff.accessToken))
      .send({ tenantId: owner.tenantId, userId: owner.userId, reason: 'support ticket #77: projects missing' })
      .expect(200);
    const token = answer.body.accessToken as string;
    expect(hasuraRole(token)).toBe('owner_readonly');
    expect(allowedRoles(token)).toEqual(['owner_readonly']);
    expect(answer.body).toMatchObject({ role: 'owner', readOnly: true });
    // It still reads on /auth as the member would.
    await request(h.app).get('/auth/members').set(bearer(token)).expect(200);
    const me = await request(h.app).get('/auth/me').set(bearer(token)).expect(200);
    expect(me.body.actor).toBe(staff.userId);
    for (const [path, body] of [
      ['/auth/api-keys', { name: 'backdoor', role: 'owner' }],
      ['/auth/members', { email: 'friend@example.test', role: 'owner' }],
      ['/auth/invitations', { email: 'friend@example.test', role: 'owner' }],
      ['/auth/switch-tenant', { tenant: owner.slug }],
      ['/auth/verify-email/resend', {}],
      ['/auth/staff/impersonate', { tenantId: owner.tenantId, userId: staff.userId, reason: 'a long enough reason' }],
    ] as const) {
      const refused = await request(h.app).post(path).set(bearer(token)).send(body);
      expect(refused.status, path).toBe(403);
    }
    expect((await request(h.app).delete(`/auth/members/${owner.userId}`).set(bearer(token))).status).toBe(403);
    expect((await h.admin.query('SELECT 1 FROM api_keys WHERE tenant_id = $1', [owner.tenantId])).rowCount).toBe(0);
  });

  test('the verifier reads a read-only role back as the tenant role, read-only', async () => {
    const owner = await signUp(h.app, 'roverify');
    const token = h.deps.tokens.sign({ userId: owner.userId, tenant: { id: owner.tenantId!, role: 'admin' }, readOnly: true });
    expect(h.deps.tokens.verify(token)).toMatchObject({ role: 'admin', readOnly: true, tenantId: owner.tenantId });
    expect(h.deps.tokens.verify(owner.accessToken)).toMatchObject({ role: 'owner', readOnly: false });
    const refused = await request(h.app).post('/auth/api-keys').set(bearer(token)).send({ name: 'x' });
    expect(refused.status).toBe(403);
    expectError(refused.body, 'forbidden');
  });
});
