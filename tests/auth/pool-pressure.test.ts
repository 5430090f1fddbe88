import type { Express } from 'express';
import type pg from 'pg';
import { pino } from 'pino';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildAuthApp } from '../../services/auth/src/app.js';
import { createServicePool } from '../../services/shared/src/db/pool.js';
import { services } from '../helpers/database.js';
import { bearer, PASSWORD, signUp, startHarness, type Harness, type SignedUp } from './harness.js';

// A session route that holds a connection (the refresh token's row lock) and asks the pool
// for a second one waits for itself once every connection is held that way. With one
// connection, a single request is enough; the acquire timeout turns the wait into a 503.
const ACQUIRE_TIMEOUT_MS = 3_000;

let h: Harness;
let tinyPool: pg.Pool;
let app: Express;
beforeAll(async () => {
  h = await startHarness();
  tinyPool = createServicePool({
    connectionString: services().urls.app_service,
    applicationName: 'tenantry-auth-pool-pressure',
    logger: pino({ level: 'silent' }),
    max: 1,
    connectionTimeoutMillis: ACQUIRE_TIMEOUT_MS,
  });
  app = buildAuthApp({ ...h.deps, pool: tinyPool });
});
afterAll(async () => {
  await tinyPool?.end();
  await h?.close();
});

/** A user who belongs to two tenants, to switch between. */
async function userOfTwoTenants(label: string): Promise<{ user: SignedUp; other: SignedUp }> {
  const user = await signUp(h.app, label);
  const other = await signUp(h.app, `${label}o`);
  await h.admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'member')", [other.tenantId, user.userId]);
  return { user, other };
}

describe('session routes on a pool of one connection', () => {
  test('switching tenant with the refresh token completes', async () => {
    const { user, other } = await userOfTwoTenants('pool1');
    const answer = await request(app)
      .post('/auth/switch-tenant')
      .set(bearer(user.accessToken))
      .send({ tenant: other.slug, refreshToken: user.refreshToken });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.tenant).toMatchObject({ id: other.tenantId });
  });

  test('a storm of refreshes and switches, many sessions at once, all complete', async () => {
    const users = await Promise.all(Array.from({ length: 6 }, (_, index) => userOfTwoTenants(`storm${index}`)));
    const rounds = await Promise.all(
      users.map(async ({ user, other }) => {
        const statuses: number[] = [];
        let refreshToken = user.refreshToken;
        let accessToken = user.accessToken;
        for (let round = 0; round < 4; round += 1) {
          const target = round % 2 === 0 ? other : user;
          const switched = await request(app).post('/auth/switch-tenant').set(bearer(accessToken)).send({ tenant: target.tenantId, refreshToken });
          statuses.push(switched.status);
          if (switched.status !== 200) break;
          const refreshed = await request(app).post('/auth/refresh').send({ refreshToken: switched.body.refreshToken });
          statuses.push(refreshed.status);
          if (refreshed.status !== 200) break;
          expect(refreshed.body.tenant).toMatchObject({ id: target.tenantId });
          ({ refreshToken, accessToken } = refreshed.body as { refreshToken: string; accessToken: string });
        }
        return statuses;
      }),
    );
    // A request that waited out the acquire timeout would have answered 503.
    expect(rounds).toEqual(users.map(() => Array.from({ length: 8 }, () => 200)));
  });

  test('the other session routes complete too: signup, login, me, tenants, logout', async () => {
    const statuses = await Promise.all(
      Array.from({ length: 4 }, async (_, index) => {
        const user = await signUp(app, `poolsign${index}`);
        const login = await request(app).post('/auth/login').send({ email: user.email, password: PASSWORD });
        const me = await request(app).get('/auth/me').set(bearer(login.body.accessToken));
        const tenants = await request(app).get('/auth/tenants').set(bearer(login.body.accessToken));
        const logout = await request(app).post('/auth/logout').send({ refreshToken: login.body.refreshToken });
        return [login.status, me.status, tenants.status, logout.status];
      }),
    );
    expect(statuses).toEqual(Array.from({ length: 4 }, () => [200, 200, 200, 204]));
  });
});
