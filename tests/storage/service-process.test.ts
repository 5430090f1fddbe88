/**
 * The storage process as `npm run storage:start` runs it: configuration read once (a bad one
 * ends it with every problem named), health before auth answers, tokens once the keys are
 * in, and a clean stop on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import getPort from 'get-port';
import { describe, expect, test } from 'vitest';
import { KeyRing } from '../../services/auth/src/keys.js';
import { TokenIssuer } from '../../services/auth/src/tokens.js';
import { poolAs, services } from '../helpers/database.js';
import { createStorageTenant } from './harness.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const ISSUER = 'https://auth.tenantry.test';
const AUDIENCE = 'tenantry-test';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(probe: () => Promise<T | undefined>, what: string, output: () => string, attempts = 120): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const found = await probe().catch(() => undefined);
    if (found !== undefined) return found;
    await sleep(150);
  }
  throw new Error(`${what} never happened; output:\n${output()}`);
}

describe('the storage process', () => {
  test('answers health before auth does, verifies tokens once the keys are in, and stops on SIGTERM', async () => {
    const [port, jwksPort] = await Promise.all([getPort(), getPort()]);
    const keys = KeyRing.generate();
    const admin = poolAs('platform_admin', 2);
    const tenant = await createStorageTenant(admin, 'store-proc');
    const { s3 } = services().endpoints;
    const child = spawn(process.execPath, ['--import', 'tsx', 'services/storage/src/main.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        DATABASE_URL: services().urls.app_service,
        REDIS_URL: services().endpoints.redisUrl,
        STORAGE_PORT: String(port),
        S3_ENDPOINT: s3.endpoint,
        S3_ACCESS_KEY: s3.accessKey,
        S3_SECRET_KEY: s3.secretKey,
        STORAGE_LAYOUT: 'prefix',
        // Both take every tenant of the shared database; their own suites run them on their own.
        STORAGE_SWEEPER: 'false',
        STORAGE_NAMESPACE_KEEPER: 'false',
        AUTH_JWKS_URL: `http://127.0.0.1:${jwksPort}/auth/.well-known/jwks.json`,
        AUTH_ISSUER: ISSUER,
        AUTH_AUDIENCE: AUDIENCE,
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let jwks: Server | undefined;
    try {
      const base = `http://127.0.0.1:${port}`;
      await until(async () => ((await fetch(`${base}/healthz`)).status === 200 ? true : undefined), 'healthz 200', () => output);
      expect((await fetch(`${base}/storage/openapi.json`)).status).toBe(200);

      const token = new TokenIssuer({ keys, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 900 }).sign({ userId: tenant.users.guest, tenant: { id: tenant.tenantId, role: 'guest' } });
      const list = () => fetch(`${base}/storage/files`, { headers: { Authorization: `Bearer ${token}` } });
      expect((await list()).status).toBe(401);
      jwks = createServer((_req, res) => {
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify(keys.jwks()));
      });
      await new Promise<void>((resolve) => jwks!.listen(jwksPort, '127.0.0.1', () => resolve()));
      const answer = await until(async () => {
        const response = await list();
        return response.status === 200 ? ((await response.json()) as { files: unknown[] }) : undefined;
      }, 'a token verified once auth answers', () => output);
      expect(answer).toEqual({ files: [], nextCursor: null });
      // JSON lines from pino; the STS endpoint was not configured, and it says so.
      expect(output).toContain('"msg":"listening"');
      expect(output).toContain('sts_not_available');
    } finally {
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      jwks?.close();
      await admin.end();
      expect(code, output).toBe(0);
    }
  });

  test('a bad environment exits 1 with every problem named, and no secret echoed', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'services/storage/src/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        S3_SECRET_KEY: 'very-secret-key',
        S3_ENDPOINT: 'not a url',
        STORAGE_UPLOAD_TTL_SECONDS: '3600',
        STORAGE_DOWNLOAD_TTL_SECONDS: '301',
        STORAGE_LAYOUT: 'folders',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(1);
    for (const variable of ['DATABASE_URL', 'REDIS_URL', 'S3_ENDPOINT', 'S3_ACCESS_KEY', 'STORAGE_UPLOAD_TTL_SECONDS', 'STORAGE_DOWNLOAD_TTL_SECONDS', 'STORAGE_LAYOUT', 'AUTH_JWKS_URL']) {
      expect(stderr).toContain(variable);
    }
    expect(stderr).not.toContain('very-secret-key');
  });
});
