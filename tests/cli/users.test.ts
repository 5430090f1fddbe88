import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ARGON2_DEFAULTS, PASSWORD_MIN_LENGTH } from '../../services/shared/src/passwords.js';
import { startHarness, type Harness } from '../auth/harness.js';
import { hex } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';
import { cli, cliEnv } from './helpers.js';

const uniqueEmail = (label: string) => `${label}-${hex(5)}@example.test`;

describe('user create: the password policy of the auth service', () => {
  let auth: Harness;
  beforeAll(async () => {
    auth = await startHarness();
  });
  afterAll(async () => auth.close());

  test('a one-character password is refused by the CLI and by the auth service alike, and nothing is created', async () => {
    const email = uniqueEmail('short-pw');
    const created = await cli(['user', 'create', email, '--password-stdin'], { stdin: 'x' });
    expect(created.code).toBe(1);
    expect(created.stderr).toBe(`tenantry: the password must be at least ${PASSWORD_MIN_LENGTH} characters — pipe a longer one into --password-stdin\n`);
    const listed = await cli(['user', 'list', '--email', email, '--json']);
    expect(listed.json()).toEqual([]);

    const signup = await request(auth.app).post('/auth/signup').send({ email: uniqueEmail('short-pw-auth'), password: 'x' });
    expect(signup.status).toBe(422);
    expect(signup.body.error.code).toBe('validation_failed');
  });

  test('one character short of the policy is refused by both; at the minimum both accept', async () => {
    const shortest = 'a'.repeat(PASSWORD_MIN_LENGTH - 1);
    const enough = 'b'.repeat(PASSWORD_MIN_LENGTH);
    const [cliShort, cliEnough] = await Promise.all([
      cli(['user', 'create', uniqueEmail('nine'), '--password-stdin'], { stdin: shortest }),
      cli(['user', 'create', uniqueEmail('ten'), '--password-stdin'], { stdin: `${enough}\n` }),
    ]);
    expect(cliShort.code).toBe(1);
    expect(cliEnough.code, cliEnough.stderr).toBe(0);
    const [authShort, authEnough] = await Promise.all([
      request(auth.app).post('/auth/signup').send({ email: uniqueEmail('nine-auth'), password: shortest }),
      request(auth.app).post('/auth/signup').send({ email: uniqueEmail('ten-auth'), password: enough }),
    ]);
    expect(authShort.status).toBe(422);
    expect(authEnough.status).toBe(201);
    const tooLong = await cli(['user', 'create', uniqueEmail('long'), '--password-stdin'], { stdin: 'c'.repeat(257) });
    expect(tooLong.code).toBe(1);
    expect(tooLong.stderr).toContain('at most 256 characters');
  });

  test("the CLI hashes with the service's argon2id cost, and the auth service logs the user in with it", async () => {
    const email = uniqueEmail('cost');
    const password = 'correct horse battery staple';
    const created = await cli(['user', 'create', email, '--password-stdin', '--json'], { stdin: password });
    expect(created.code, created.stderr).toBe(0);
    const admin = poolAs('platform_admin', 1);
    try {
      const { rows } = await admin.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE email = $1', [email]);
      const { memoryCost, timeCost, parallelism } = ARGON2_DEFAULTS;
      expect(rows[0]!.password_hash.startsWith(`$argon2id$v=19$m=${memoryCost},t=${timeCost},p=${parallelism}$`)).toBe(true);
    } finally {
      await admin.end();
    }
    const login = await request(auth.app).post('/auth/login').send({ email, password });
    expect(login.status, JSON.stringify(login.body)).toBe(200);

    const lowered = await cli(['user', 'create', uniqueEmail('cost-env'), '--password-stdin'], {
      stdin: password,
      env: cliEnv({ AUTH_ARGON2_MEMORY_KIB: '12' }),
    });
    expect(lowered.code).toBe(1);
    expect(lowered.stderr).toContain('AUTH_ARGON2_MEMORY_KIB is invalid');
  });
});

describe('user staff grant / revoke', () => {
  test('grant and revoke change users.is_staff, each with a platform audit entry carrying the reason; a no-op writes none', async () => {
    const email = uniqueEmail('staff');
    expect((await cli(['user', 'create', email])).code).toBe(0);

    const granted = await cli(['user', 'staff', 'grant', email, '--reason', 'on-call rotation', '--json']);
    expect(granted.code, granted.stderr).toBe(0);
    expect(granted.json()).toMatchObject({ email, is_staff: true, changed: true });
    const again = await cli(['user', 'staff', 'grant', email, '--reason', 'twice']);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`${email} is already staff: nothing changed\n`);
    const revoked = await cli(['user', 'staff', 'revoke', email.toUpperCase(), '--reason', 'left the team']);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`revoked staff from ${email}`);

    const audit = await cli(['audit', '--platform', '--action', 'users.staff', '--since', '1h', '--json']);
    expect(audit.code, audit.stderr).toBe(0);
    const mine = audit
      .json<Array<{ action: string; reason: string; actor: string; before: { is_staff: boolean }; after: { email: string; is_staff: boolean } }>>()
      .filter((entry) => entry.after.email === email);
    expect(mine.map((entry) => [entry.action, entry.reason, entry.before.is_staff, entry.after.is_staff])).toEqual([
      ['users.staff.revoke', 'left the team', true, false],
      ['users.staff.grant', 'on-call rotation', false, true],
    ]);
    expect(mine.every((entry) => entry.actor.startsWith('cli:'))).toBe(true);
    const listed = await cli(['user', 'list', '--email', email, '--json']);
    expect(listed.json()).toMatchObject([{ email, is_staff: false }]);
  });

  test('without --reason, with an empty one, or for an unknown user: refused, nothing changes', async () => {
    const email = uniqueEmail('staff-refused');
    expect((await cli(['user', 'create', email])).code).toBe(0);
    const [noReason, emptyReason, unknown] = await Promise.all([
      cli(['user', 'staff', 'grant', email]),
      cli(['user', 'staff', 'grant', email, '--reason', '  ']),
      cli(['user', 'staff', 'grant', uniqueEmail('nobody'), '--reason', 'x']),
    ]);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toContain("required option '--reason <text>' not specified");
    expect(emptyReason.code).toBe(2);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/user '.*' not found/);
    const listed = await cli(['user', 'list', '--email', email, '--json']);
    expect(listed.json()).toMatchObject([{ email, is_staff: false }]);
  });
});
