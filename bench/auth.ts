/**
 * npm run bench:auth — the auth service's hot paths, in one table:
 *
 *   sign/s and verify/s     RS256 (what the service signs with: asymmetric, so Hasura and the
 *                           edge verify from the JWKS) against HS256 (a shared-secret JWT, the
 *                           cheapest possible signature) — the price of asymmetric keys.
 *   POST /auth/token req/s  the API-key exchange through HTTP (key lookup by prefix through a
 *                           SECURITY DEFINER function, last_used_at update under RLS, RS256 sign)
 *                           against GET /healthz through the same server (HTTP + one Postgres
 *                           round trip + a Redis PING): the floor any endpoint pays.
 *   login p50 / p99 (ms)    POST /auth/login with the production argon2id parameters (19 MiB,
 *                           t=2, p=1, OWASP's minimum) against one bare argon2.verify with the
 *                           same parameters: the login's own overhead on top of the hash.
 *
 * Goals (ratios): exchange ≥ 0.25 of /healthz; login p50 ≤ 1.5× and p99 ≤ 2× the bare hash
 * (argon2 must dominate a login, not our queries). Sign/verify are reported without a goal:
 * RS256's cost is the price of letting Hasura and the edge verify without the secret.
 *
 * Baselines are measured in the same run on the same machine. Postgres comes from
 * DATABASE_URL (a superuser URL) or a throwaway native server; Redis from REDIS_URL or a
 * native redis-server started for the run. Settings: BENCH_SECONDS (per throughput case,
 * default 3), BENCH_WORKERS (concurrent HTTP clients, default 16), BENCH_LOGINS (default 200).
 */
import { createSecretKey, randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import argon2 from 'argon2';
import { Redis } from 'ioredis';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import { pino } from 'pino';
import { z } from 'zod';
import { buildAuthApp } from '../services/auth/src/app.js';
import { KeyRing } from '../services/auth/src/keys.js';
import type { Mailer } from '../services/shared/src/mail/mailer.js';
import { PasswordHasher } from '../services/shared/src/passwords.js';
import { LoginLimiter } from '../services/auth/src/rate-limit.js';
import { TokenIssuer } from '../services/auth/src/tokens.js';
import { startBenchDatabase } from './lib/database.js';
import { startBenchRedis } from './lib/redis.js';
import { printComparison, writeResults, type ComparisonCase } from './lib/report.js';
import { measureThroughput } from './lib/throughput.js';

const config = z
  .object({
    BENCH_SECONDS: z.coerce.number().positive().default(3),
    BENCH_WORKERS: z.coerce.number().int().min(1).default(16),
    BENCH_LOGINS: z.coerce.number().int().min(20).default(200),
  })
  .parse(process.env);

const ARGON2 = { memoryCost: 19456, timeCost: 2, parallelism: 1 };

function syncRate(work: () => void, seconds: number): number {
  for (let i = 0; i < 50; i++) work();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let done = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < 20; i++) work();
    done += 20;
  }
  return done / ((performance.now() - started) / 1000);
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

async function main(): Promise<void> {
  const runStarted = performance.now();
  const cases: ComparisonCase[] = [];

  // 1. Signing and verifying, in process.
  const keys = KeyRing.generate();
  const issuer = new TokenIssuer({ keys, issuer: 'https://bench', audience: 'bench', ttlSeconds: 900 });
  const subject = { userId: crypto.randomUUID(), tenant: { id: crypto.randomUUID(), role: 'member' as const } };
  // A KeyObject, as the service holds its RSA keys: jsonwebtoken re-imports a Buffer or string secret on every call (~60× slower).
  const secret = createSecretKey(randomBytes(32));
  const hsPayload = { 'https://hasura.io/jwt/claims': { 'x-hasura-user-id': subject.userId, 'x-hasura-tenant-id': subject.tenant.id, 'x-hasura-default-role': 'member', 'x-hasura-allowed-roles': ['member'] } };
  const hsSign = () => jwt.sign(hsPayload, secret, { algorithm: 'HS256', subject: subject.userId, issuer: 'https://bench', audience: 'bench', expiresIn: 900 });
  const rsToken = issuer.sign(subject);
  const hsToken = hsSign();
  console.log('measuring sign and verify…');
  cases.push({ case: 'access token sign (HS256 → RS256)', baseline: syncRate(hsSign, config.BENCH_SECONDS), candidate: syncRate(() => issuer.sign(subject), config.BENCH_SECONDS), unit: 'ops/s', higherIsBetter: true });
  cases.push({
    case: 'access token verify (HS256 → RS256)',
    baseline: syncRate(() => jwt.verify(hsToken, secret, { algorithms: ['HS256'], issuer: 'https://bench', audience: 'bench' }), config.BENCH_SECONDS),
    candidate: syncRate(() => issuer.verify(rsToken), config.BENCH_SECONDS),
    unit: 'ops/s',
    higherIsBetter: true,
  });

  // 2. Through HTTP, against real Postgres and Redis.
  const database = await startBenchDatabase();
  const benchRedis = await startBenchRedis();
  const pool = new pg.Pool({ connectionString: database.urls.app_service, max: 20 });
  const redis = new Redis(benchRedis.url);
  const mailer: Mailer = { send: async () => undefined, close: () => undefined };
  const app = buildAuthApp({
    pool,
    redis,
    logger: pino({ level: 'silent' }),
    keys,
    tokens: issuer,
    passwords: new PasswordHasher(ARGON2),
    mailer,
    // Benchmark logins all fail nowhere and come from one address: no lockout in the way.
    limiter: new LoginLimiter(redis, { maxFailuresPerIp: 1_000_000, windowSeconds: 60, lockoutSeconds: 1, delayFromFailure: 1_000_000 }),
    refreshTtlSeconds: 3600,
    publicUrl: 'https://bench.invalid',
  });
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const post = (route: string, body: unknown, token?: string) =>
    fetch(`${base}${route}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  try {
    const email = `bench-${randomBytes(4).toString('hex')}@example.test`;
    const password = 'benchmark password 1';
    const slug = `bench-${randomBytes(4).toString('hex')}`;
    const signup = (await (await post('/auth/signup', { email, password, tenant: { slug, name: 'Bench' } })).json()) as { accessToken: string };
    // API keys are a plan feature (not the free plan's).
    const admin = new pg.Client({ connectionString: database.urls.platform_admin });
    await admin.connect();
    await admin.query(`UPDATE tenants SET plan_id = 'starter' WHERE slug = $1`, [slug]).finally(() => admin.end());
    const created = (await (await post('/auth/api-keys', { name: 'bench', role: 'member' }, signup.accessToken)).json()) as { key: string };
    console.log('measuring token exchange…');
    const expectOk = async (response: Promise<Response>) => {
      const answer = await response;
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      await answer.arrayBuffer();
    };
    const options = { workers: config.BENCH_WORKERS, durationMs: config.BENCH_SECONDS * 1000, maxIterationsPerWorker: 1_000_000 };
    await measureThroughput({ ...options, durationMs: 500, operation: () => expectOk(post('/auth/token', { apiKey: created.key })) });
    const healthz = await measureThroughput({ ...options, operation: () => expectOk(fetch(`${base}/healthz`)) });
    const exchange = await measureThroughput({ ...options, operation: () => expectOk(post('/auth/token', { apiKey: created.key })) });
    // Goal: the exchange (two queries, one RLS transaction, an RSA signature) keeps at least a quarter of the bare HTTP+DB floor.
    cases.push({ case: 'POST /auth/token (GET /healthz → exchange)', baseline: healthz, candidate: exchange, unit: 'req/s', higherIsBetter: true, goal: 0.25 });

    console.log('measuring login latency (sequential)…');
    const hash = await argon2.hash(password, { type: argon2.argon2id, ...ARGON2 });
    const bare: number[] = [];
    const logins: number[] = [];
    for (let i = 0; i < config.BENCH_LOGINS; i++) {
      let started = performance.now();
      await argon2.verify(hash, password);
      bare.push(performance.now() - started);
      started = performance.now();
      await expectOk(post('/auth/login', { email, password }));
      logins.push(performance.now() - started);
    }
    cases.push({ case: 'login p50 (bare argon2 verify → POST /auth/login)', baseline: percentile(bare, 50), candidate: percentile(logins, 50), unit: 'ms', higherIsBetter: false, goal: 1.5 });
    cases.push({ case: 'login p99 (bare argon2 verify → POST /auth/login)', baseline: percentile(bare, 99), candidate: percentile(logins, 99), unit: 'ms', higherIsBetter: false, goal: 2 });
  } finally {
    await new Promise((resolve) => server.close(resolve));
    await pool.end();
    redis.disconnect();
    await benchRedis.stop();
    await database.stop();
  }

  printComparison(`auth service — argon2id m=${ARGON2.memoryCost} KiB t=${ARGON2.timeCost} p=${ARGON2.parallelism}; ${config.BENCH_WORKERS} HTTP workers; ${config.BENCH_LOGINS} logins`, cases);
  const file = await writeResults('auth', cases, { config, argon2: ARGON2, postgres: database.source, redis: benchRedis.source });
  console.log(`\nwrote ${file}; total ${((performance.now() - runStarted) / 1000).toFixed(0)} s`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
