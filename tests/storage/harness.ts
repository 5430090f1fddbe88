/**
 * The storage service in-process on a random port, on the test run's real Postgres, Redis
 * and MinIO, with tokens signed as the auth service signs them; tenants of its own with one
 * member of each role; and a client that uploads the way a browser does (fetch + FormData).
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import type { Client } from 'minio';
import type pg from 'pg';
import { pino } from 'pino';
import { KeyRing } from '../../services/auth/src/keys.js';
import { TokenIssuer } from '../../services/auth/src/tokens.js';
import { TokenVerifier } from '../../services/shared/src/auth/verifier.js';
import { createServiceServer } from '../../services/shared/src/http/serve.js';
import type { Role } from '../../services/shared/src/permissions.js';
import { createS3Client, type StorageLayout } from '../../services/shared/src/storage/location.js';
import { buildStorageApp } from '../../services/storage/src/app.js';
import type { StorageDependencies } from '../../services/storage/src/deps.js';
import { ObjectStore } from '../../services/storage/src/object-store.js';
import { AssumeRoleIssuer } from '../../services/storage/src/sts.js';
import { createUsers, hex, uniqueSlug, type PlanId } from '../fixtures/seed.js';
import { poolAs, services } from '../helpers/database.js';

const ISSUER = 'https://auth.tenantry.test';
const AUDIENCE = 'tenantry-test';
export const REGION = 'us-east-1';

export const sha256Hex = (content: Buffer | string): string => createHash('sha256').update(content).digest('hex');

/** The root S3 client of the test MinIO. */
export function rootS3(): Client {
  const { endpoint, accessKey, secretKey } = services().endpoints.s3;
  return createS3Client(endpoint, { accessKey, secretKey, region: REGION });
}

export interface RunningService {
  url: string;
  deps: StorageDependencies;
  close(): Promise<void>;
}

export interface ServiceOptions {
  /** app_service on another database (a scratch one); default the shared test database. */
  pool?: pg.Pool;
  uploadTtlSeconds?: number;
  downloadTtlSeconds?: number;
  /** false: no STS endpoint configured. */
  sts?: boolean;
}

export interface StorageHarness {
  layout: StorageLayout;
  /** The shared bucket of the prefix layout (one per harness, so runs never meet). */
  sharedBucket: string;
  /** app_service, as the service connects. */
  pool: pg.Pool;
  /** platform_admin: fixtures and checks that RLS would hide. */
  admin: pg.Pool;
  redis: Redis;
  s3: Client;
  /** The service as configured for production (15 min uploads, 5 min downloads, STS). */
  service: RunningService;
  /** Another instance of the service on the same stores, with other settings. */
  startService(options: ServiceOptions): Promise<RunningService>;
  token(userId: string, tenantId: string, role: Role, extra?: { apiKeyId?: string; readOnly?: boolean }): string;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Serves a JWKS the way the auth service does. */
async function serveJwks(keys: KeyRing): Promise<{ server: Server; url: string }> {
  const server = createServer((_req, res) => {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(keys.jwks()));
  });
  return { server, url: `${await listen(server)}/auth/.well-known/jwks.json` };
}

const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });

export async function startStorageHarness(layout: StorageLayout): Promise<StorageHarness> {
  const { s3: endpoints, redisUrl } = services().endpoints;
  const pool = poolAs('app_service', 10);
  const admin = poolAs('platform_admin', 4);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  const keys = KeyRing.generate();
  const jwks = await serveJwks(keys);
  const verifier = await TokenVerifier.fromUrl(jwks.url, { issuer: ISSUER, audience: AUDIENCE });
  const tokens = new TokenIssuer({ keys, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 900 });
  const sharedBucket = `tenantry-files-${hex(4)}`;
  const objects = new ObjectStore({
    endpoint: endpoints.endpoint,
    publicEndpoint: endpoints.endpoint,
    accessKey: endpoints.accessKey,
    secretKey: endpoints.secretKey,
    region: REGION,
    settings: { layout, sharedBucket },
  });
  const sts = new AssumeRoleIssuer({ stsEndpoint: endpoints.endpoint, accessKey: endpoints.accessKey, secretKey: endpoints.secretKey, region: REGION });
  const running: RunningService[] = [];

  async function startService(options: ServiceOptions): Promise<RunningService> {
    const logger = pino({ level: process.env.STORAGE_TEST_LOG ?? 'silent' });
    const deps: StorageDependencies = {
      pool: options.pool ?? pool,
      redis,
      logger,
      verifier,
      objects,
      sts: options.sts === false ? null : sts,
      uploadTtlSeconds: options.uploadTtlSeconds ?? 900,
      downloadTtlSeconds: options.downloadTtlSeconds ?? 300,
    };
    const server = createServiceServer(buildStorageApp(deps));
    const service = {
      url: await listen(server),
      deps,
      close: () => closeServer(server),
    };
    running.push(service);
    return service;
  }

  return {
    layout,
    sharedBucket,
    pool,
    admin,
    redis,
    s3: objects.internal,
    service: await startService({}),
    startService,
    token: (userId, tenantId, role, extra = {}) => tokens.sign({ userId, tenant: { id: tenantId, role }, ...extra }),
    async close() {
      await Promise.all([...running.map((service) => service.close()), closeServer(jwks.server)]);
      await Promise.all([pool.end(), admin.end(), redis.quit()]);
    },
  };
}

export interface StorageTenant {
  tenantId: string;
  slug: string;
  users: Record<Role, string>;
}

/** A tenant with one member of each role, on `plan`, with `maxStorageBytes` as its override when given. */
export async function createStorageTenant(
  admin: pg.Pool,
  label: string,
  { plan = 'pro', maxStorageBytes }: { plan?: PlanId; maxStorageBytes?: number } = {},
): Promise<StorageTenant> {
  const slug = uniqueSlug(label);
  const [owner, adminUser, member, guest] = (await createUsers(admin, slug, 4)) as [string, string, string, string];
  // On pro first: four members are above the free plan's user limit, which binds only new members.
  const { rows } = await admin.query<{ id: string }>(
    "INSERT INTO tenants (slug, name, plan_id, owner_user_id, max_storage_bytes) VALUES ($1, $1, 'pro', $2, $3) RETURNING id",
    [slug, owner, maxStorageBytes ?? null],
  );
  const tenantId = rows[0]!.id;
  await admin.query(
    `INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'owner'), ($1, $3, 'admin'), ($1, $4, 'member'), ($1, $5, 'guest')`,
    [tenantId, owner, adminUser, member, guest],
  );
  if (plan !== 'pro') await admin.query('UPDATE tenants SET plan_id = $2 WHERE id = $1', [tenantId, plan]);
  return { tenantId, slug, users: { owner, admin: adminUser, member, guest } };
}

/** What the limit checks count: files plus pending uploads. */
export async function committedBytes(admin: pg.Pool, tenantId: string): Promise<number> {
  const { rows } = await admin.query<{ bytes: string }>('SELECT app.storage_bytes_committed($1)::text AS bytes', [tenantId]);
  return Number(rows[0]!.bytes);
}

export async function uploadStatus(admin: pg.Pool, uploadId: string): Promise<string | undefined> {
  const { rows } = await admin.query<{ status: string }>('SELECT status FROM file_uploads WHERE id = $1', [uploadId]);
  return rows[0]?.status;
}

/** A response body as the tests read it: whatever the service answered, checked by the assertions (as supertest's body). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Body = any;

/** A client of the service as one member: JSON in, JSON (or the bare response) out. */
export class StorageClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async call(method: string, path: string, body?: unknown): Promise<{ status: number; body: Body; response: Response }> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      redirect: 'manual',
      headers: { Authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // Not JSON: the text itself.
    }
    return { status: response.status, body: parsed, response };
  }

  startUpload(request: { bucket: string; name: string; size: number; contentType: string; sha256: string }) {
    return this.call('POST', '/storage/uploads', request);
  }

  complete(uploadId: string) {
    return this.call('POST', `/storage/uploads/${uploadId}/complete`);
  }
}

/** POSTs `content` with a presigned POST's fields, as a browser form does (the file last). */
export async function postForm(url: string, fields: Record<string, string>, content: Buffer, override: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const form = new FormData();
  for (const [name, value] of Object.entries({ ...fields, ...override })) form.append(name, value);
  form.append('file', new Blob([content]), 'upload.bin');
  const response = await fetch(url, { method: 'POST', body: form });
  return { status: response.status, text: await response.text() };
}

/** A name of its own in a test. */
export const fileName = (label: string) => `${label}/${uniqueSlug('f')}.bin`;
