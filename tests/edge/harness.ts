import { randomBytes, randomUUID } from 'node:crypto';
import { request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import pg from 'pg';
import { pino } from 'pino';
import { buildResolverApp } from '../../services/resolver/src/app.js';
import { startEchoServer } from '../../scripts/native/echo-upstream.js';
import { startEdge, type EdgeInstance } from '../../scripts/native/edge.js';
import { stopProcess } from '../../scripts/native/services.js';
import { services } from '../helpers/database.js';

export type { Echo } from '../../scripts/native/echo-upstream.js';

export const BASE_DOMAIN = 'example-saas.test';

export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Raw HTTP, so a test can send any Host, repeated headers and bodies byte for byte. */
export function send(
  baseUrl: string,
  urlPath: string,
  options: { host?: string; headers?: Record<string, string | string[]>; method?: string; body?: Buffer | string } = {},
): Promise<Response> {
  const url = new URL(urlPath, baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method: options.method ?? 'GET',
        headers: { host: options.host ?? `${BASE_DOMAIN}`, ...options.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/**
 * A well-formed token with the given claims and a dummy signature: the edge only reads
 * claims (Hasura and the services verify signatures).
 */
export function tokenFor(
  tenantId: string | undefined,
  { userId, issuedAt = Math.floor(Date.now() / 1000), hasuraClaims = {} }: { userId?: string; issuedAt?: number; hasuraClaims?: Record<string, unknown> } = {},
): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const claims: Record<string, unknown> = { 'x-hasura-default-role': 'member', ...hasuraClaims };
  if (tenantId !== undefined) claims['x-hasura-tenant-id'] = tenantId;
  if (userId !== undefined) claims['x-hasura-user-id'] = userId;
  const payload = { sub: userId ?? randomUUID(), iat: issuedAt, 'https://hasura.io/jwt/claims': claims };
  return `${encode({ alg: 'EdDSA', typ: 'JWT' })}.${encode(payload)}.c2lnbmF0dXJl`;
}

export interface EdgeHarness {
  edge: EdgeInstance;
  admin: pg.Pool;
  purgeSecret: string;
  stopResolver(): Promise<void>;
  startResolver(): Promise<void>;
  createTenant(options?: { status?: 'active' | 'suspended' | 'deleted'; plan?: string }): Promise<{ id: string; slug: string }>;
  stop(): Promise<void>;
}

export async function startEdgeHarness(overrides: Record<string, string> = {}): Promise<EdgeHarness> {
  const { urls, endpoints } = services();
  const admin = new pg.Pool({ connectionString: urls.platform_admin, max: 4 });
  const resolverPool = new pg.Pool({ connectionString: urls.app_service, max: 4 });
  const resolverSecret = randomBytes(24).toString('base64url');
  const purgeSecret = randomBytes(24).toString('base64url');
  const resolverApp = buildResolverApp({ pool: resolverPool, secret: resolverSecret, logger: pino({ level: 'silent' }) });
  const resolverPort = await getPort();
  let resolver: Server | undefined;
  const startResolver = () =>
    new Promise<void>((resolve) => {
      resolver = resolverApp.listen(resolverPort, '127.0.0.1', () => resolve());
    });
  const stopResolver = () =>
    new Promise<void>((resolve) => {
      resolver?.closeAllConnections();
      resolver?.close(() => resolve());
    });
  await startResolver();
  const echo = await startEchoServer();
  const echoAddress = `127.0.0.1:${(echo.address() as AddressInfo).port}`;
  const runtimeDir = await mkdtemp(path.join(os.tmpdir(), 'tenantry-edge-'));
  const edge = await startEdge({
    runtimeDir,
    detached: false,
    env: {
      EDGE_PORT: String(await getPort()),
      EDGE_WORKER_PROCESSES: '2',
      BASE_DOMAIN,
      HASURA_UPSTREAM: echoAddress,
      AUTH_UPSTREAM: echoAddress,
      BILLING_UPSTREAM: echoAddress,
      STORAGE_UPSTREAM: echoAddress,
      RESOLVER_UPSTREAM: `127.0.0.1:${resolverPort}`,
      RESOLVER_SECRET: resolverSecret,
      EDGE_PURGE_SECRET: purgeSecret,
      REDIS_URL: endpoints.redisUrl,
      EDGE_PURGE_STREAM: `edge:purges:${randomBytes(4).toString('hex')}`,
      EDGE_NEGATIVE_CACHE_TTL_SECONDS: '1',
      EDGE_ERROR_LOG_LEVEL: 'info',
      ...overrides,
    },
  });
  return {
    edge,
    admin,
    purgeSecret,
    stopResolver,
    startResolver,
    async createTenant({ status = 'active', plan = 'pro' } = {}) {
      const slug = `edge-${randomBytes(5).toString('hex')}`;
      const { rows } = await admin.query<{ id: string }>(
        'INSERT INTO tenants (slug, name, status, plan_id) VALUES ($1, $1, $2, $3) RETURNING id',
        [slug, status, plan],
      );
      return { id: rows[0]!.id, slug };
    },
    async stop() {
      await stopProcess(edge.pid);
      await stopResolver();
      await new Promise((resolve) => echo.close(resolve));
      await Promise.all([admin.end(), resolverPool.end()]);
      await rm(runtimeDir, { recursive: true, force: true });
    },
  };
}
