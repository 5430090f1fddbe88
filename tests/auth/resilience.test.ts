import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { services } from '../helpers/database.js';
import { call, DedicatedPostgres, sleep, startServiceProcess, type Answer, type ServiceProcess } from './outage-helpers.js';
import { PasswordHasher } from '../../services/shared/src/passwords.js';
import { seedTenant } from '../fixtures/seed.js';
import { authStorageEnv, PASSWORD } from './harness.js';

/**
 * Point 12 of issue 13: the services survive their database going away. Each runs as a
 * real process (main.ts, as deployed) against a Postgres server of this file's own, which
 * the tests terminate sessions of, stop and start again.
 */

let database: DedicatedPostgres;
let auth: ServiceProcess;
let resolver: ServiceProcess;
const RESOLVER_SECRET = randomBytes(18).toString('base64url');
let owner: { email: string; slug: string };

beforeAll(async () => {
  database = await DedicatedPostgres.start();
  const common = { DATABASE_URL: database.url('app_service'), LOG_LEVEL: 'error' };
  [auth, resolver] = await Promise.all([
    startServiceProcess(
      'services/auth/src/main.ts',
      {
        ...common,
        ...authStorageEnv(),
        REDIS_URL: services().endpoints.redisUrl,
        SMTP_URL: 'smtp://127.0.0.1:1',
        PUBLIC_URL: 'https://app.example.test',
        AUTH_ARGON2_MEMORY_KIB: '1024',
        AUTH_ARGON2_TIME_COST: '1',
      },
      '/auth/.well-known/jwks.json',
    ),
    startServiceProcess('services/resolver/src/main.ts', { ...common, RESOLVER_SECRET }, '/healthz'),
  ]);
  // The tenant and its owner are seeded as the platform admin would; the owner gets a password.
  const admin = new pg.Pool({ connectionString: database.url('platform_admin'), max: 1 });
  try {
    const seeded = await seedTenant(admin, 'resilient');
    owner = { email: seeded.ownerEmail, slug: seeded.slug };
    const hash = await new PasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 }).hash(PASSWORD);
    await admin.query('UPDATE users SET password_hash = $1 WHERE id = $2', [hash, seeded.ownerUserId]);
  } finally {
    await admin.end();
  }
});

afterAll(async () => {
  await Promise.all([auth?.stop(), resolver?.stop()]);
  await database?.remove();
});

/** Each request from its own client address, so the login limits of the shared Redis never interfere. */
const fromSomewhere = () => ({ 'X-Forwarded-For': `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${randomBytes(1)[0]}` });
/** Bounded at 15 s, past the services' own timeouts: an answer that takes longer is a hang. */
const login = () => call(`${auth.base}/auth/login`, { method: 'POST', headers: fromSomewhere(), json: { email: owner.email, password: PASSWORD } }, 15_000);
const resolve = () => call(`${resolver.base}/internal/resolve?by=slug&value=${owner.slug}`, { headers: { 'x-resolver-secret': RESOLVER_SECRET } }, 15_000);

interface Session {
  accessToken: string;
  refreshToken: string;
}

/** A 503 is the one error shape with code `unavailable`; anything but 200 or that is a failure. */
function unexpected(answers: Answer[]): Answer[] {
  return answers.filter((answer) => {
    if (answer.status === 200) return false;
    const error = (answer.body as { error?: { code?: string } } | null)?.error;
    return !(answer.status === 503 && error?.code === 'unavailable');
  });
}

async function terminateSessions(admin: pg.Client, applicationName: string): Promise<number> {
  const { rows } = await admin.query<{ terminated: boolean }>(
    'SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
    [applicationName],
  );
  return rows.filter((row) => row.terminated).length;
}

describe('the auth and resolver processes survive the database going away', () => {
  test('ATTACK: pg_terminate_backend on all their connections under load: no crash, every answer is 200 or 503 unavailable', async () => {
    const admin = new pg.Client({ connectionString: database.adminUrl });
    await admin.connect();
    const answers: Answer[] = [];
    let running = true;
    // Each worker logs in, reads /auth/me (a transaction on a checked-out client), rotates
    // its refresh token (another), and asks the resolver: the requests in flight when the
    // sessions are terminated.
    const worker = async () => {
      let session: Session | undefined;
      while (running) {
        if (!session) {
          const answer = await login();
          answers.push(answer);
          if (answer.status === 200) session = answer.body as Session;
          continue;
        }
        const [me, resolved] = await Promise.all([call(`${auth.base}/auth/me`, { headers: { Authorization: `Bearer ${session.accessToken}` } }), resolve()]);
        answers.push(me, resolved);
        const rotated = await call(`${auth.base}/auth/refresh`, { method: 'POST', headers: fromSomewhere(), json: { refreshToken: session.refreshToken } });
        answers.push(rotated);
        // A 503 may have come after the rotation committed: start a new session rather than present the old token again.
        session = rotated.status === 200 ? (rotated.body as Session) : undefined;
      }
    };
    const workers = Array.from({ length: 6 }, () => worker());
    let terminated = 0;
    const served = () => answers.filter((answer) => answer.status === 200).length;
    try {
      // At least 20 rounds, and on until a few requests were served between them: on two
      // cores shared with the whole suite, argon2 logins can take most of a 75 ms round.
      for (let round = 0; round < 200 && (round < 20 || served() <= 5); round++) {
        await sleep(75);
        terminated += await terminateSessions(admin, 'tenantry-auth');
        terminated += await terminateSessions(admin, 'tenantry-resolver');
      }
    } finally {
      running = false;
      await Promise.all(workers);
      await admin.end();
    }
    expect(terminated).toBeGreaterThan(10);
    expect(auth.alive(), auth.output()).toBe(true);
    expect(resolver.alive(), resolver.output()).toBe(true);
    expect(unexpected(answers), auth.output()).toEqual([]);
    expect(served()).toBeGreaterThan(5);
    // And they serve at once afterwards.
    expect((await login()).status).toBe(200);
    expect((await resolve()).status).toBe(200);
  });

  test('ATTACK: the database hangs (every Postgres process stopped): answers 503 within the query timeout, never waits forever; back within 5 s', async () => {
    // Connections in the pool first, so that requests meet a hung connection, not only a hung connect.
    expect((await login()).status).toBe(200);
    expect((await resolve()).status).toBe(200);
    database.freeze();
    try {
      const answers = await Promise.all([login(), login(), resolve(), call(`${auth.base}/healthz`, {}, 15_000)]);
      for (const answer of answers) {
        expect(answer.status, JSON.stringify(answer.body)).toBe(503);
        // The services' query timeout is 10 s, their connect timeout 2 s.
        expect(answer.ms).toBeLessThan(12_000);
      }
    } finally {
      database.thaw();
    }
    const back = Date.now();
    let answer = await login();
    while (answer.status !== 200 && Date.now() - back < 10_000) {
      await sleep(100);
      answer = await login();
    }
    expect(Date.now() - back).toBeLessThan(5_000);
    expect(auth.alive(), auth.output()).toBe(true);
    expect(resolver.alive(), resolver.output()).toBe(true);
  }, 40_000);

  test('ATTACK: the database stops: 503 unavailable within seconds, never a hang; back within 5 s of its return, by themselves', async () => {
    await database.down();
    try {
      for (const answer of [await login(), await login(), await resolve()]) {
        expect(answer.status, JSON.stringify(answer.body)).toBe(503);
        expect((answer.body as { error: { code: string } }).error.code).toBe('unavailable');
        expect(answer.ms).toBeLessThan(3_000);
      }
      expect((await call(`${auth.base}/healthz`)).status).toBe(503);
      expect((await call(`${resolver.base}/healthz`)).status).toBe(503);
      // What needs no database keeps working.
      expect((await call(`${auth.base}/auth/.well-known/jwks.json`)).status).toBe(200);
    } finally {
      await database.up();
    }
    const back = Date.now();
    const firstSuccess = async (attempt: () => Promise<Answer>) => {
      for (;;) {
        const answer = await attempt();
        if (answer.status === 200 || Date.now() - back > 10_000) return Date.now() - back;
        await sleep(100);
      }
    };
    const [authBack, resolverBack] = await Promise.all([firstSuccess(login), firstSuccess(resolve)]);
    expect(authBack).toBeLessThan(5_000);
    expect(resolverBack).toBeLessThan(5_000);
    expect(auth.alive(), auth.output()).toBe(true);
    expect(resolver.alive(), resolver.output()).toBe(true);
  });
});
