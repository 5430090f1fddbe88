/**
 * One mailbox, one account (issue 13, point 9). On the native stack `x@bücher.test` and
 * `x@BÜCHER.test` both signed up: the cluster's C locale made lower() fold A-Z only. Every
 * spelling of an address now reaches the same row, whichever writer it came through (the
 * auth service, the CLI), and the database refuses a row that skipped normalisation.
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { withTenant } from '../../services/shared/src/db/tenant-context.js';
import { cli } from '../cli/helpers.js';
import { dbError } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';
import { bearer, expectError, PASSWORD, signUp, startHarness, uniqueSlug, type Harness } from './harness.js';

let h: Harness;
const service = poolAs('app_service', 2);
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await Promise.all([h.close(), service.end()]);
});

/** A fresh local part, and two spellings of one address on a German IDN domain. */
function spellings(label: string) {
  const local = `${label}-${randomBytes(4).toString('hex')}`;
  return {
    lower: `${local}@bücher.test`,
    upper: `${local.toUpperCase()}@BÜCHER.test`,
    // ü decomposed (u + U+0308), as some keyboards and copy-pastes send it.
    decomposed: `${local}@bu\u0308cher.test`,
    stored: `${local}@xn--bcher-kva.test`,
  };
}

const signup = (email: string) => request(h.app).post('/auth/signup').send({ email, password: PASSWORD });

/**
 * An owner logged into a tenant of their own. The tenant is made as the CLI makes it
 * (platform_admin), so these tests depend on nothing but signup and login.
 */
async function owner(label: string): Promise<{ tenantId: string; userId: string; accessToken: string }> {
  const account = await signUp(h.app, label, false);
  const slug = uniqueSlug(label);
  const { rows } = await h.admin.query<{ id: string }>(
    `WITH tenant AS (INSERT INTO tenants (slug, name, owner_user_id) VALUES ($1, $1, $2) RETURNING id),
          member AS (INSERT INTO tenant_members (tenant_id, user_id, role) SELECT id, $2, 'owner' FROM tenant)
     SELECT id FROM tenant`,
    [slug, account.userId],
  );
  const login = await request(h.app).post('/auth/login').send({ email: account.email, password: PASSWORD, tenant: slug }).expect(200);
  return { tenantId: rows[0]!.id, userId: account.userId, accessToken: login.body.accessToken as string };
}

describe('signup and login', () => {
  test('x@bücher.test, then X@BÜCHER.test or a decomposed ü: the same mailbox, 409 email_in_use', async () => {
    const address = spellings('signup');
    expect((await signup(address.lower)).status).toBe(201);
    for (const other of [address.upper, address.decomposed]) {
      const answer = await signup(other);
      expect(answer.status, `${other}: ${JSON.stringify(answer.body)}`).toBe(409);
      expectError(answer.body, 'email_in_use');
    }
    const { rows } = await h.admin.query<{ email: string }>('SELECT email FROM users WHERE email LIKE $1', [`${address.stored.split('@')[0]}@%`]);
    expect(rows).toEqual([{ email: address.stored }]);
  });

  test('ATTACK: look-alike accounts — fullwidth letters are the same mailbox (409), invisible characters are refused (422)', async () => {
    const tag = randomBytes(4).toString('hex');
    expect((await signup(`zwn-${tag}@example.test`)).status).toBe(201);
    const fullwidth = await signup(`ｚwn-${tag}@example.test`);
    expect(fullwidth.status).toBe(409);
    expectError(fullwidth.body, 'email_in_use');
    // A fullwidth @ is no address to the request schema: refused before normalisation.
    expect((await signup(`zwn-${tag}＠example.test`)).status).toBe(422);
    for (const invisible of ['\u00AD', '\u200D', '\u200B', '\uFEFF']) {
      const answer = await signup(`zw${invisible}n-${tag}@example.test`);
      expect(answer.status, JSON.stringify(invisible)).toBe(422);
      expectError(answer.body, 'validation_failed');
    }
    const { rows } = await h.admin.query<{ n: number }>('SELECT count(*)::int AS n FROM users WHERE email LIKE $1', [`%wn-${tag}@%`]);
    expect(rows[0]!.n).toBe(1);
  });

  test('non-ASCII local parts fold too: ÖMER, İ and Σ', async () => {
    const tag = randomBytes(4).toString('hex');
    for (const [first, second] of [
      [`ömer-${tag}@example.test`, `ÖMER-${tag}@example.test`],
      [`i\u0307pek-${tag}@example.test`, `İPEK-${tag}@example.test`],
      [`σοφια-${tag}@example.test`, `ΣΟΦΙΑ-${tag}@example.test`],
    ] as const) {
      expect((await signup(first)).status, first).toBe(201);
      const answer = await signup(second);
      expect(answer.status, second).toBe(409);
      expectError(answer.body, 'email_in_use');
    }
  });

  test('login works with either spelling', async () => {
    const address = spellings('login');
    expect((await signup(address.upper)).status).toBe(201);
    for (const email of [address.lower, address.upper, address.decomposed, address.stored]) {
      const answer = await request(h.app).post('/auth/login').send({ email, password: PASSWORD });
      expect(answer.status, `${email}: ${JSON.stringify(answer.body)}`).toBe(200);
    }
    const me = await request(h.app)
      .get('/auth/me')
      .set(bearer((await request(h.app).post('/auth/login').send({ email: address.lower, password: PASSWORD })).body.accessToken as string));
    expect(me.body.user.email).toBe(address.stored);
  });

  test('an address whose domain is no host name is a 422 validation_failed, not a 500', async () => {
    for (const email of ['x@-bad.test', 'x@bad..test', 'x@example.test:25', `x@${'a'.repeat(70)}.test`]) {
      const answer = await signup(email);
      expect(answer.status, email).toBe(422);
      expectError(answer.body, 'validation_failed');
    }
  });
});

describe('invitations', () => {
  test('an invitation to either spelling is one pending invitation', async () => {
    const inviter = await owner('normi');
    const address = spellings('invitee');
    const first = await request(h.app).post('/auth/invitations').set(bearer(inviter.accessToken)).send({ email: address.lower });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    for (const other of [address.upper, address.decomposed]) {
      const again = await request(h.app).post('/auth/invitations').set(bearer(inviter.accessToken)).send({ email: other });
      expect(again.status, `${other}: ${JSON.stringify(again.body)}`).toBe(409);
      expectError(again.body, 'invitation_pending');
    }
    const { rows } = await h.admin.query<{ email: string }>("SELECT email FROM tenant_invitations WHERE tenant_id = $1 AND status = 'pending'", [inviter.tenantId]);
    expect(rows).toEqual([{ email: address.stored }]);
    // Sent to the punycode address; the sink's parser shows the domain in Unicode again.
    await h.mail.waitFor(address.lower, /invited/);
  });
});

describe('the CLI', () => {
  test('user create normalises, and refuses another spelling of an address the auth service stored', async () => {
    const address = spellings('cli');
    const created = await cli(['user', 'create', address.upper, '--json']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.json<{ email: string }>().email).toBe(address.stored);

    const [again, decomposed] = await Promise.all([cli(['user', 'create', address.lower]), cli(['user', 'create', address.decomposed])]);
    for (const refused of [again, decomposed]) {
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`a user with email '${address.stored}' already exists`);
    }
    const signedUp = await signup(address.lower);
    expect(signedUp.status).toBe(409);
    expectError(signedUp.body, 'email_in_use');
  });

  test('an account the auth service created is found by any spelling; an invalid domain is a clear error', async () => {
    const address = spellings('find');
    expect((await signup(address.lower)).status).toBe(201);
    const listed = await cli(['user', 'list', '--email', address.upper, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.json<Array<{ email: string }>>().map((row) => row.email)).toEqual([address.stored]);
    const bad = await cli(['user', 'create', 'ops@-bad.test']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("'ops@-bad.test' is not an email address");
  });
});

describe('the database refuses what skipped normalisation', () => {
  test.each([
    ['a Unicode domain', (local: string) => `${local}@bücher.test`],
    ['an upper-case local part', (local: string) => `${local.toUpperCase()}@example.test`],
    ['an upper-case domain', (local: string) => `${local}@Example.test`],
    ['a decomposed ü', (local: string) => `${local}u\u0308@example.test`],
    ['upper case beyond ASCII', (local: string) => `${local}Ü@example.test`],
  ])('a direct INSERT into users as app_service with %s fails users_email_normalised', async (_, spell) => {
    const email = spell(`direct-${randomBytes(4).toString('hex')}`);
    const error = await dbError(service.query('INSERT INTO users (email) VALUES ($1)', [email]));
    expect(error?.code, error?.message).toBe('23514');
    expect(error?.constraint).toBe('users_email_normalised');
  });

  test('and into tenant_invitations, in the tenant context the auth service uses', async () => {
    const tenant = await owner('normd');
    const error = await dbError(
      withTenant(service, { tenantId: tenant.tenantId, userId: tenant.userId, role: 'owner' }, (client) =>
        client.query("INSERT INTO tenant_invitations (email, token_hash) VALUES ($1, 'h')", [`Invitee-${randomBytes(4).toString('hex')}@bücher.test`]),
      ),
    );
    expect(error?.code, error?.message).toBe('23514');
    expect(error?.constraint).toBe('tenant_invitations_email_normalised');
  });
});
