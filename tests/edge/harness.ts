import { randomBytes, randomUUID } from 'node:crypto';
import { request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
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

/** Undoes chunked transfer coding (nginx chunks the bodies Lua writes); undefined until the last chunk is in. */
function dechunk(body: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', offset);
    if (lineEnd < 0) return undefined;
    const size = Number.parseInt(body.subarray(offset, lineEnd).toString(), 16);
    if (Number.isNaN(size)) throw new Error(`malformed chunk size in ${JSON.stringify(body.toString().slice(0, 200))}`);
    if (size === 0) return Buffer.concat(parts);
    if (body.length < lineEnd + 2 + size + 2) return undefined;
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
}

/** The response in `raw` once it is complete, else undefined. `closed`: nothing more will come. */
function parseResponse(raw: Buffer, closed: boolean): Response | undefined {
  const headEnd = raw.indexOf('\r\n\r\n');
  if (headEnd < 0) {
    if (closed) throw new Error(`not an HTTP answer: ${JSON.stringify(raw.toString().slice(0, 200))}`);
    return undefined;
  }
  const [statusLine = '', ...headerLines] = raw.subarray(0, headEnd).toString('latin1').split('\r\n');
  const headers: IncomingHttpHeaders = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body: Buffer | undefined = raw.subarray(headEnd + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    body = dechunk(body);
  } else if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    body = body.length >= length ? body.subarray(0, length) : undefined;
  } else if (!closed) {
    body = undefined;
  }
  if (body === undefined) {
    if (closed) throw new Error(`truncated answer: ${JSON.stringify(raw.toString().slice(0, 200))}`);
    return undefined;
  }
  const text = body.toString();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: Number(statusLine.split(' ')[1]), headers, text, json };
}

/**
 * Bytes on a socket, for what HTTP clients refuse to send: absolute-form request lines,
 * NUL bytes, dot segments, broken versions. Returns the first response as soon as it is
 * complete: after refusing a request nginx holds the connection open a while (lingering close).
 */
export function sendRaw(baseUrl: string, bytes: string | Buffer, timeoutMs = 5_000): Promise<Response> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    // Written, not ended: nginx takes a half-closed connection for a client that went away.
    const socket = connect(Number(port), hostname, () => socket.write(bytes));
    const settle = (closed: boolean) => {
      try {
        const response = parseResponse(received, closed);
        if (response) {
          socket.destroy();
          resolve(response);
        }
      } catch (error) {
        socket.destroy();
        reject(error as Error);
      }
    };
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no complete answer within ${timeoutMs} ms`)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      settle(false);
    });
    socket.on('error', reject);
    socket.on('close', () => settle(true));
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
  /** host:port of the echo upstream behind every route, for an edge started with more upstreams pointing at it. */
  echoAddress: string;
  admin: pg.Pool;
  purgeSecret: string;
  /** The Redis stream this edge polls for purges (publishEdgePurge's third argument). */
  purgeStream: string;
  /** The Redis stream this edge appends its counts of requests to. */
  usageStream: string;
  stopResolver(): Promise<void>;
  startResolver(): Promise<void>;
  createTenant(options?: { status?: 'active' | 'suspended' | 'deleted'; plan?: string }): Promise<{ id: string; slug: string }>;
  /** Another edge (its own nginx) on the same resolver, upstream and Redis; stopped with the harness. */
  startAnotherEdge(overrides?: Record<string, string>): Promise<EdgeInstance>;
  stop(): Promise<void>;
}

export async function startEdgeHarness(overrides: Record<string, string> = {}): Promise<EdgeHarness> {
  const { urls, endpoints } = services();
  const admin = new pg.Pool({ connectionString: urls.platform_admin, max: 4 });
  const resolverPool = new pg.Pool({ connectionString: urls.app_service, max: 4 });
  const resolverSecret = randomBytes(24).toString('base64url');
  const purgeSecret = randomBytes(24).toString('base64url');
  const purgeStream = `edge:purges:${randomBytes(4).toString('hex')}`;
  // Not usage:api: the billing tests' usage worker reads that one on the same Redis.
  const usageStream = `usage:api:edge-test:${randomBytes(4).toString('hex')}`;
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
  const sharedEnv = {
    BASE_DOMAIN,
    HASURA_UPSTREAM: echoAddress,
    AUTH_UPSTREAM: echoAddress,
    BILLING_UPSTREAM: echoAddress,
    STORAGE_UPSTREAM: echoAddress,
    RESOLVER_UPSTREAM: `127.0.0.1:${resolverPort}`,
    RESOLVER_SECRET: resolverSecret,
    EDGE_PURGE_SECRET: purgeSecret,
    REDIS_URL: endpoints.redisUrl,
    EDGE_PURGE_STREAM: purgeStream,
    EDGE_USAGE_STREAM: usageStream,
    EDGE_NEGATIVE_CACHE_TTL_SECONDS: '1',
    EDGE_ERROR_LOG_LEVEL: 'info',
    // The tests send many requests without a token from one address.
    EDGE_ANONYMOUS_RATE_LIMIT_RPS: '0',
    ...overrides,
  };
  const edge = await startEdge({
    runtimeDir,
    detached: false,
    env: { EDGE_PORT: String(await getPort()), EDGE_WORKER_PROCESSES: '2', ...sharedEnv },
  });
  const moreEdges: { edge: EdgeInstance; runtimeDir: string }[] = [];
  return {
    edge,
    echoAddress,
    admin,
    purgeSecret,
    purgeStream: overrides.EDGE_PURGE_STREAM ?? purgeStream,
    usageStream: overrides.EDGE_USAGE_STREAM ?? usageStream,
    stopResolver,
    startResolver,
    async createTenant({ status = 'active', plan = 'pro' } = {}) {
      const slug = `edge-${randomBytes(5).toString('hex')}`;
      const client = await admin.connect();
      try {
        await client.query('BEGIN');
        const { rows } = await client.query<{ id: string }>(
          'INSERT INTO tenants (slug, name, status, plan_id) VALUES ($1, $1, $2, $3) RETURNING id',
          [slug, status, plan],
        );
        const id = rows[0]!.id;
        // A tenant with members has an owner: the tests' members join one that has it.
        if (status !== 'deleted') {
          const owner = await client.query<{ id: string }>('INSERT INTO users (email) VALUES ($1) RETURNING id', [`owner-${slug}@example.test`]);
          await client.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'owner')", [id, owner.rows[0]!.id]);
        }
        await client.query('COMMIT');
        return { id, slug };
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      } finally {
        client.release();
      }
    },
    async startAnotherEdge(more = {}) {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'tenantry-edge-'));
      const another = await startEdge({
        runtimeDir: dir,
        detached: false,
        env: { EDGE_WORKER_PROCESSES: '2', ...sharedEnv, EDGE_PORT: String(await getPort()), ...more },
      });
      moreEdges.push({ edge: another, runtimeDir: dir });
      return another;
    },
    async stop() {
      for (const more of moreEdges) {
        await stopProcess(more.edge.pid);
        await rm(more.runtimeDir, { recursive: true, force: true });
      }
      await stopProcess(edge.pid);
      await stopResolver();
      await new Promise((resolve) => echo.close(resolve));
      await Promise.all([admin.end(), resolverPool.end()]);
      await rm(runtimeDir, { recursive: true, force: true });
    },
  };
}
