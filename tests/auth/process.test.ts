import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import getPort from 'get-port';
import pg from 'pg';
import { pino } from 'pino';
import request from 'supertest';
import { describe, expect, test } from 'vitest';
import { buildAuthApp } from '../../services/auth/src/app.js';
import { exportPrivatePem, generateSigningKey } from '../../services/auth/src/keys.js';
import { services } from '../helpers/database.js';
import { authStorageEnv, startHarness } from './harness.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

describe('the auth process', () => {
  test('main.ts starts from the environment, publishes the configured keys, and stops on SIGTERM', async () => {
    const port = await getPort();
    const key = generateSigningKey();
    const child = spawn(process.execPath, ['--import', 'tsx', 'services/auth/src/main.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        DATABASE_URL: services().urls.app_service,
        REDIS_URL: services().endpoints.redisUrl,
        ...authStorageEnv(),
        AUTH_PORT: String(port),
        AUTH_SIGNING_KEYS: JSON.stringify([{ kid: 'k-2026-11', privateKeyPem: exportPrivatePem(key) }]),
        SMTP_URL: 'smtp://127.0.0.1:1',
        PUBLIC_URL: 'https://app.example.test',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      let jwks: { keys: { kid: string }[] } | undefined;
      for (let i = 0; i < 100 && !jwks; i++) {
        await new Promise((resolve) => setTimeout(resolve, 150));
        jwks = await fetch(`http://127.0.0.1:${port}/auth/.well-known/jwks.json`)
          .then((response) => response.json() as Promise<{ keys: { kid: string }[] }>)
          .catch(() => undefined);
      }
      expect(jwks?.keys.map((entry) => entry.kid), output).toEqual(['k-2026-11']);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code, output).toBe(0);
    }
  });

  test('a bad environment exits with every problem named', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'services/auth/src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, AUTH_SIGNING_KEYS: 'not json', AUTH_ACCESS_TOKEN_TTL_SECONDS: '3600' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    for (const variable of ['DATABASE_URL', 'REDIS_URL', 'SMTP_URL', 'PUBLIC_URL', 'AUTH_SIGNING_KEYS', 'AUTH_ACCESS_TOKEN_TTL_SECONDS']) expect(stderr).toContain(variable);
  });

  test('an unreachable database is a 503 unavailable, a database error a 500, both without details or stack', async () => {
    const h = await startHarness();
    const unreachable = new pg.Pool({ connectionString: 'postgresql://nobody:wrong@127.0.0.1:1/none', connectionTimeoutMillis: 300 });
    // A role without rights on users: the login's query fails inside Postgres, not on the way there.
    const refused = new pg.Pool({ connectionString: services().urls.hasura_app, max: 1 });
    try {
      const away = buildAuthApp({ ...h.deps, pool: unreachable, logger: pino({ level: 'silent' }) });
      const answer = await request(away).post('/auth/login').send({ email: 'a@example.test', password: 'whatever password' }).expect(503);
      expect(answer.body).toEqual({ error: { code: 'unavailable', message: 'a dependency is unavailable; retry shortly' } });
      expect((await request(away).get('/healthz').expect(503)).body.error.code).toBe('unavailable');

      const broken = buildAuthApp({ ...h.deps, pool: refused, logger: pino({ level: 'silent' }) });
      const failed = await request(broken).post('/auth/login').send({ email: 'a@example.test', password: 'whatever password' }).expect(500);
      expect(failed.body).toEqual({ error: { code: 'internal', message: 'internal error' } });
    } finally {
      await Promise.all([unreachable.end(), refused.end()]);
      await h.close();
    }
  });
});
