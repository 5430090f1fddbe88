import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PasswordHasher } from '../../services/shared/src/passwords.js';
import { createRedisClient, REDIS_COMMAND_TIMEOUT_MS } from '../../services/shared/src/redis.js';
import { poolAs, services } from '../helpers/database.js';
import { seedTenant } from '../fixtures/seed.js';
import { authStorageEnv, PASSWORD } from './harness.js';
import { call, DedicatedRedis, sleep, startServiceProcess, type Answer, type ServiceProcess } from './outage-helpers.js';

/**
 * Point 13 of issue 13: a hung or dead Redis never makes a request wait, the login throttle
 * fails closed (503 `unavailable`, never an unthrottled guess), and what needs no Redis
 * keeps working. The auth service runs as a real process against a redis-server of this
 * file's own, which the tests pause (SIGSTOP), kill and start again.
 */

let redis: DedicatedRedis;
let auth: ServiceProcess;
let owner: { email: string };
let session: { accessToken: string; refreshToken: string };

beforeAll(async () => {
  redis = await DedicatedRedis.start();
  auth = await startServiceProcess(
    'services/auth/src/main.ts',
    {
      DATABASE_URL: services().urls.app_service,
      ...authStorageEnv(),
      REDIS_URL: redis.url,
      SMTP_URL: 'smtp://127.0.0.1:1',
      PUBLIC_URL: 'https://app.example.test',
      AUTH_ARGON2_MEMORY_KIB: '1024',
      AUTH_ARGON2_TIME_COST: '1',
      LOG_LEVEL: 'error',
    },
    '/auth/.well-known/jwks.json',
  );
  const admin = poolAs('platform_admin', 1);
  try {
    const seeded = await seedTenant(admin, 'redis-outage');
    owner = { email: seeded.ownerEmail };
    const hash = await new PasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 }).hash(PASSWORD);
    await admin.query('UPDATE users SET password_hash = $1 WHERE id = $2', [hash, seeded.ownerUserId]);
  } finally {
    await admin.end();
  }
  const first = await login(PASSWORD);
  expect(first.status, auth.output()).toBe(200);
  session = first.body as typeof session;
});

afterAll(async () => {
  await auth?.stop();
  await redis?.remove();
});

const fromSomewhere = () => ({ 'X-Forwarded-For': `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${randomBytes(1)[0]}` });
/** Bounded at 5 s: a login that waits longer than that has no timeout of its own. */
const login = (password: string) => call(`${auth.base}/auth/login`, { method: 'POST', headers: fromSomewhere(), json: { email: owner.email, password } }, 5_000);

function expectUnavailableQuickly(answer: Answer): void {
  expect(answer.status, `${JSON.stringify(answer.body)} after ${answer.ms} ms\n${auth.output()}`).toBe(503);
  expect((answer.body as { error: { code: string } }).error.code).toBe('unavailable');
  expect(answer.ms).toBeLessThan(1_500);
}

/** What needs no Redis: the session's own token, its rotation, the public keys. */
async function expectRedisFreeEndpointsWork(): Promise<void> {
  const me = await call(`${auth.base}/auth/me`, { headers: { Authorization: `Bearer ${session.accessToken}` } }, 5_000);
  expect(me.status, JSON.stringify(me.body)).toBe(200);
  const rotated = await call(`${auth.base}/auth/refresh`, { method: 'POST', json: { refreshToken: session.refreshToken } }, 5_000);
  expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
  session = rotated.body as typeof session;
  expect((await call(`${auth.base}/auth/.well-known/jwks.json`, {}, 5_000)).status).toBe(200);
}

async function secondsUntilLoginWorks(): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < 10_000) {
    if ((await login(PASSWORD)).status === 200) break;
    await sleep(100);
  }
  return (Date.now() - started) / 1000;
}

describe('the auth service with Redis away', () => {
  test('ATTACK: Redis hung (SIGSTOP): login answers 503 unavailable within a second, right or wrong password; the rest works', async () => {
    redis.pause();
    try {
      expectUnavailableQuickly(await login(PASSWORD));
      // Fails closed: a guess is neither judged nor let through unthrottled.
      expectUnavailableQuickly(await login('a wrong guess!'));
      const health = await call(`${auth.base}/healthz`, {}, 5_000);
      expect(health.status).toBe(503);
      expect(health.ms).toBeLessThan(1_500);
      await expectRedisFreeEndpointsWork();
    } finally {
      redis.resume();
    }
    expect(await secondsUntilLoginWorks()).toBeLessThan(2);
    expect(auth.alive(), auth.output()).toBe(true);
  });

  test('ATTACK: Redis down: login answers 503 unavailable (not 500) at once; back within 5 s of its return', async () => {
    await redis.down();
    try {
      // Both the first failure after the loss and the ones while reconnecting.
      for (let i = 0; i < 3; i++) {
        expectUnavailableQuickly(await login(PASSWORD));
        expectUnavailableQuickly(await login('a wrong guess!'));
      }
      await expectRedisFreeEndpointsWork();
    } finally {
      await redis.up();
    }
    expect(await secondsUntilLoginWorks()).toBeLessThan(5);
    expect(auth.alive(), auth.output()).toBe(true);
  });
});

describe('the shared Redis client', () => {
  let blackHole: Server;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    // Accepts connections and never answers: a hung server, a full network path.
    blackHole = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', () => resolve()));
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => blackHole.close(resolve));
  });

  test('every command fails within REDIS_COMMAND_TIMEOUT_MS against a server that never answers', async () => {
    const address = blackHole.address() as { port: number };
    const client = createRedisClient(`redis://127.0.0.1:${address.port}`, { logger: pino({ level: 'silent' }), name: 'test-black-hole' });
    try {
      for (const command of [() => client.get('platform:{probe}'), () => client.multi().incr('platform:{probe}').exec(), () => client.ping()]) {
        const started = Date.now();
        await expect(command()).rejects.toThrow();
        // Within the timeout (sooner when the client has already given the connection up).
        expect(Date.now() - started).toBeLessThan(REDIS_COMMAND_TIMEOUT_MS + 300);
      }
    } finally {
      client.disconnect();
    }
  });
});
