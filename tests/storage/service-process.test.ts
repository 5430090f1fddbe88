/**
 * The storage process as `npm run storage:start` runs it: configuration read once (a bad one
 * ends it with every problem named), health before auth answers, tokens once the keys are
 * in, and a clean stop on SIGTERM.
 */
import type { Server } from 'node:http';
import getPort from 'get-port';
import { describe, expect, test } from 'vitest';
import { KeyRing } from '../../services/auth/src/keys.js';
import { TokenIssuer } from '../../services/auth/src/tokens.js';
import { poolAs, services } from '../helpers/database.js';
import { runToExit, serveJwks, startServiceProcess, until } from '../helpers/service-process.js';
import { createStorageTenant } from './harness.js';

const ISSUER = 'https://auth.tenantry.test';
const AUDIENCE = 'tenantry-test';

describe('the storage process', () => {
  test('answers health before auth does, verifies tokens once the keys are in, and stops on SIGTERM', async () => {
    const [port, jwksPort] = await Promise.all([getPort(), getPort()]);
    const keys = KeyRing.generate();
    const admin = poolAs('platform_admin', 2);
    const tenant = await createStorageTenant(admin, 'store-proc');
    const { s3 } = services().endpoints;
    const service = startServiceProcess('services/storage/src/main.ts', {
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
    });
    const output = service.output;
    let jwks: Server | undefined;
    try {
      const base = `http://127.0.0.1:${port}`;
      await until(async () => ((await fetch(`${base}/healthz`)).status === 200 ? true : undefined), 'healthz 200', output);
      expect((await fetch(`${base}/storage/openapi.json`)).status).toBe(200);

      const token = new TokenIssuer({ keys, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 900 }).sign({ userId: tenant.users.guest, tenant: { id: tenant.tenantId, role: 'guest' } });
      const list = () => fetch(`${base}/storage/files`, { headers: { Authorization: `Bearer ${token}` } });
      expect((await list()).status).toBe(401);
      jwks = await serveJwks(jwksPort, () => keys);
      const answer = await until(async () => {
        const response = await list();
        return response.status === 200 ? ((await response.json()) as { files: unknown[] }) : undefined;
      }, 'a token verified once auth answers', output);
      expect(answer).toEqual({ files: [], nextCursor: null });
      // JSON lines from pino; the STS endpoint was not configured, and it says so.
      expect(output()).toContain('"msg":"listening"');
      expect(output()).toContain('sts_not_available');
    } finally {
      const code = await service.stop();
      jwks?.close();
      await admin.end();
      expect(code, output()).toBe(0);
    }
  });

  test('a bad environment exits 1 with every problem named, and no secret echoed', async () => {
    const { code, stderr } = await runToExit('services/storage/src/main.ts', {
      PATH: process.env.PATH,
      S3_SECRET_KEY: 'very-secret-key',
      S3_ENDPOINT: 'not a url',
      STORAGE_UPLOAD_TTL_SECONDS: '3600',
      STORAGE_DOWNLOAD_TTL_SECONDS: '301',
      STORAGE_LAYOUT: 'folders',
    });
    expect(code).toBe(1);
    for (const variable of ['DATABASE_URL', 'REDIS_URL', 'S3_ENDPOINT', 'S3_ACCESS_KEY', 'STORAGE_UPLOAD_TTL_SECONDS', 'STORAGE_DOWNLOAD_TTL_SECONDS', 'STORAGE_LAYOUT', 'AUTH_JWKS_URL']) {
      expect(stderr).toContain(variable);
    }
    expect(stderr).not.toContain('very-secret-key');
  });
});
