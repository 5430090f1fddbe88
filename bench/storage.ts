/**
 * npm run bench:storage — the storage service's two hot paths, in one table:
 *
 *   presign req/s        POST /storage/uploads through the real storage app (the shared HTTP
 *                        kit, the token's signature, the access check that reads the member's
 *                        role and the tenant's status, the reservation: INSERT into
 *                        file_uploads with its statement trigger that takes the tenant's
 *                        advisory lock and sums its bytes, the name check, the POST policy's
 *                        signature, the info log line), loaded by wrk with a new upload name on
 *                        every request, spread over BENCH_TENANTS tenants (each one owner, a
 *                        storage limit far above what the run reserves), and again on one
 *                        tenant only (every reservation then waits for the one before: the
 *                        per-tenant lock). The baseline is a bare loop of the same signing
 *                        call in this process: the minio client's presignedPostPolicy on a
 *                        signing-only client, with the same conditions (bucket, key,
 *                        Content-Type, exact size, SHA-256). Between the two, a bare Express
 *                        handler that parses the same JSON body and signs: the HTTP part.
 *                        Then one tenant receives BENCH_LARGE_TENANT_FILES files, and the
 *                        many tenants beside it and that tenant are loaded again: the trigger
 *                        sums a tenant's files and pending uploads on every reservation,
 *                        under the tenant's lock, with a plan made for any tenant. Pending uploads are marked
 *                        expired after each round, so a round starts from the same sums.
 *   upload MiB/s         One BENCH_UPLOAD_MIB MiB file (random bytes) sent with the service's
 *                        presigned POST (multipart form, the policy's fields then the file)
 *                        through the edge's S3 host (s3.<BASE_DOMAIN>, nginx with S3_UPSTREAM
 *                        pointing at this run's MinIO), against a PUT of the same bytes straight
 *                        to MinIO signed with the root credentials (a presigned PUT, unsigned
 *                        payload: the least a client can do). Between them: the same PUT with
 *                        x-amz-checksum-sha256 (MinIO hashes the body, as every presigned POST
 *                        makes it), and the presigned POST straight to MinIO (no edge: the
 *                        edge's own cost shows against it). Each upload is one request on a new
 *                        connection, timed from its first byte to the answer's last; the
 *                        service's uploads are then completed (MinIO's SHA-256 checked) and
 *                        every object removed. The four alternate for BENCH_UPLOAD_ROUNDS
 *                        rounds; medians.
 *
 * Goals (issue 17): presign ≥ 0.5× the bare loop; upload through the edge ≥ 0.9× the direct PUT.
 * Where a presign's time goes is printed after the table: each part alone, one at a time
 * (token verification, access check, reservation transaction, signing), and the CPU that
 * this process and the service pool's Postgres backends spent per request under load.
 *
 * Postgres comes from DATABASE_URL (a superuser URL) or a throwaway native server (fsync off);
 * Redis from REDIS_URL or a native redis-server (the app needs a client; no presign touches
 * it); MinIO and the edge are started for the run. Settings: BENCH_SECONDS (per wrk round,
 * default 4), BENCH_ROUNDS (rounds of loop, bare handler, service over many tenants, over one,
 * over the large one, medians reported, default 3), BENCH_CONNECTIONS (wrk's, default 16),
 * BENCH_TENANTS (default 64), BENCH_LARGE_TENANT_FILES (default 100000; 0 leaves that row
 * out), BENCH_LAYOUT (bucket or prefix, default bucket as STORAGE_LAYOUT),
 * BENCH_POOL_SIZE (the service pool, default 10 as main.ts), BENCH_UPLOAD_MIB (default 64),
 * BENCH_UPLOAD_ROUNDS (default 7), BENCH_PROFILE=1 (a CPU profile of the first
 * many-tenant round, summed per package), BENCH_LOG_LEVEL (the service's, default info,
 * written to a file).
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import getPort from 'get-port';
import { Redis } from 'ioredis';
import pg from 'pg';
import { destination, pino } from 'pino';
import { z } from 'zod';
import { startEdge } from '../scripts/native/edge.js';
import { startMinio, stopProcess } from '../scripts/native/services.js';
import { KeyRing } from '../services/auth/src/keys.js';
import { TokenIssuer } from '../services/auth/src/tokens.js';
import { TokenVerifier } from '../services/shared/src/auth/verifier.js';
import { readConfig } from '../services/shared/src/config.js';
import { createServicePool } from '../services/shared/src/db/pool.js';
import { createServiceServer } from '../services/shared/src/http/serve.js';
import { createS3Client, STORAGE_LAYOUTS } from '../services/shared/src/storage/location.js';
import { inCallerTenant, storageCaller } from '../services/storage/src/access.js';
import { buildStorageApp } from '../services/storage/src/app.js';
import type { StorageDependencies } from '../services/storage/src/deps.js';
import type { Context } from '../services/storage/src/http.js';
import { ObjectStore } from '../services/storage/src/object-store.js';
import { printCpuProfile, startCpuProfile } from './lib/cpu-profile.js';
import { startBenchDatabase } from './lib/database.js';
import { startBenchRedis } from './lib/redis.js';
import { startEdgeBenchParts } from './lib/edge-parts.js';
import { printComparison, writeResults, type ComparisonCase } from './lib/report.js';
import { measureThroughput, median } from './lib/throughput.js';
import { runWrk, WRK_DONE_CALLBACK, type WrkRun } from './lib/wrk.js';

const config = readConfig(
  z.object({
    BENCH_SECONDS: z.coerce.number().int().min(1).max(60).default(4),
    BENCH_ROUNDS: z.coerce.number().int().min(1).max(15).default(3),
    BENCH_CONNECTIONS: z.coerce.number().int().min(1).max(512).default(16),
    BENCH_TENANTS: z.coerce.number().int().min(1).max(10_000).default(64),
    BENCH_LARGE_TENANT_FILES: z.coerce.number().int().min(0).max(10_000_000).default(100_000),
    BENCH_LAYOUT: z.enum(STORAGE_LAYOUTS).default('bucket'),
    BENCH_POOL_SIZE: z.coerce.number().int().min(1).default(10),
    BENCH_UPLOAD_MIB: z.coerce.number().int().min(1).max(1024).default(64),
    BENCH_UPLOAD_ROUNDS: z.coerce.number().int().min(1).max(25).default(7),
    BENCH_PROFILE: z.enum(['0', '1']).default('0').transform((value) => value === '1'),
    BENCH_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  }),
);

const REGION = 'us-east-1';
const BASE_DOMAIN = 'bench.test';
const ISSUER = 'https://auth.bench.test';
const AUDIENCE = 'tenantry-bench';
const LOGICAL_BUCKET = 'bench';
const PRESIGN_SIZE = 1024;
const PRESIGN_TYPE = 'application/octet-stream';
/** Any SHA-256: nothing is uploaded with the presign round's policies. */
const PRESIGN_SHA256 = createHash('sha256').update('tenantry bench').digest('hex');
/** Far above what a run reserves: the limit is checked on every insert, never reached. */
const TENANT_STORAGE_LIMIT = 10 ** 15;

/**
 * wrk: POST /storage/uploads with the next tenant's token (round robin) and a name no request
 * of this run used before, so every request reserves a new upload.
 */
const PRESIGN_SCRIPT = `
local tokens, count = {}, 0
local run = os.getenv("BENCH_RUN")
init = function(args)
  for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
end
request = function()
  count = count + 1
  local body = '{"bucket":"${LOGICAL_BUCKET}","name":"' .. run .. '/' .. count .. '.bin","size":${PRESIGN_SIZE},"contentType":"${PRESIGN_TYPE}","sha256":"${PRESIGN_SHA256}"}'
  return wrk.format("POST", "/storage/uploads", { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. tokens[(count % #tokens) + 1] }, body)
end
${WRK_DONE_CALLBACK}`;

interface PresignRound extends WrkRun {
  nodeCpuUsPerRequest: number;
  /** The service pool's backends; null when /proc cannot tell (a remote server). */
  postgresCpuUsPerRequest: number | null;
}

/** CPU (ms) used so far by each Postgres backend named `applicationName`; empty when /proc cannot tell. */
async function backendCpuMs(admin: pg.Pool, applicationName: string): Promise<Map<number, number>> {
  const { rows } = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
  const used = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      // After the command's closing parenthesis: utime and stime are the 12th and 13th fields, in 1/100 s.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      used.set(pid, (Number(fields[11]) + Number(fields[12])) * 10);
    } catch {
      return new Map();
    }
  }
  return used;
}

/** One wrk round against `url`, with the CPU this process and the service's backends spent per request. */
async function presignRound(url: string, scriptFile: string, tokensFile: string, seconds: number, admin: pg.Pool): Promise<PresignRound> {
  const backendsBefore = await backendCpuMs(admin, 'tenantry-storage');
  const nodeBefore = process.cpuUsage();
  const run = await runWrk(url, scriptFile, { connections: config.BENCH_CONNECTIONS, seconds, env: { BENCH_TOKENS: tokensFile, BENCH_RUN: randomBytes(6).toString('hex') } });
  const node = process.cpuUsage(nodeBefore);
  const backendsAfter = await backendCpuMs(admin, 'tenantry-storage');
  let backendMs = 0;
  for (const [pid, ms] of backendsAfter) backendMs += ms - (backendsBefore.get(pid) ?? 0);
  if (run.socketErrors > 0 || run.non2xx > 0) throw new Error(`${url}: ${run.socketErrors} socket errors, ${run.non2xx} answers outside 2xx/3xx of ${run.requests}`);
  return {
    ...run,
    nodeCpuUsPerRequest: (node.user + node.system) / run.requests,
    postgresCpuUsPerRequest: backendsAfter.size > 0 ? (backendMs * 1000) / run.requests : null,
  };
}

/** Median µs of `count` calls of `work`, one at a time, after a few unmeasured ones. */
async function microsecondsEach(count: number, work: (index: number) => Promise<unknown>): Promise<number> {
  for (let index = 0; index < 20; index++) await work(-1 - index);
  const times: number[] = [];
  for (let index = 0; index < count; index++) {
    const started = performance.now();
    await work(index);
    times.push((performance.now() - started) * 1000);
  }
  return median(times);
}

interface UploadTiming {
  mibPerSecond: number;
  status: number;
}

/** Sends `parts` as one request's body on a new connection; MiB/s of `fileBytes` from the first byte written to the answer's last. */
function sendBody(
  target: { url: string; host?: string },
  method: 'PUT' | 'POST',
  headers: Record<string, string>,
  parts: readonly Buffer[],
  fileBytes: number,
): Promise<UploadTiming & { text: string }> {
  const url = new URL(target.url);
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method,
        headers: { ...headers, 'Content-Length': String(length), ...(target.host ? { Host: target.host } : {}) },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const seconds = (performance.now() - started) / 1000;
          resolve({ mibPerSecond: fileBytes / 2 ** 20 / seconds, status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() });
        });
      },
    );
    req.on('error', reject);
    for (const part of parts.slice(0, -1)) req.write(part);
    req.end(parts.at(-1));
  });
}

/** A presigned POST as a browser form sends it: every field, then the file last. */
function multipartParts(fields: Record<string, string>, content: Buffer): { contentType: string; parts: Buffer[] } {
  const boundary = `----tenantry-bench-${randomBytes(12).toString('hex')}`;
  let head = '';
  for (const [name, value] of Object.entries(fields)) head += `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  return { contentType: `multipart/form-data; boundary=${boundary}`, parts: [Buffer.from(head), content, Buffer.from(`\r\n--${boundary}--\r\n`)] };
}

interface BenchTenant {
  tenantId: string;
  ownerId: string;
}

/** Tenants on pro with one owner each and a storage limit the run never reaches. */
async function seedTenants(admin: pg.Pool, count: number): Promise<BenchTenant[]> {
  const client = await admin.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('tenantry.actor', 'bench:storage', true)");
    const label = randomBytes(4).toString('hex');
    const { rows } = await client.query<{ id: string; owner_user_id: string }>(
      `WITH owners AS (
         INSERT INTO users (email, display_name, email_verified_at)
         SELECT format('bench-storage-%s-%s@example.test', $2::text, n), 'Bench', now() FROM generate_series(1, $1) AS n
         RETURNING id, email)
       INSERT INTO tenants (slug, name, plan_id, owner_user_id, max_storage_bytes)
       SELECT 'bench-storage-' || $2 || '-' || split_part(split_part(email, '@', 1), '-', 4), 'Bench', 'pro', id, $3
       FROM owners
       RETURNING id, owner_user_id`,
      [count, label, TENANT_STORAGE_LIMIT],
    );
    await client.query(
      "INSERT INTO tenant_members (tenant_id, user_id, role) SELECT t.id, t.owner_user_id, 'owner' FROM unnest($1::uuid[], $2::uuid[]) AS t(id, owner_user_id)",
      [rows.map((row) => row.id), rows.map((row) => row.owner_user_id)],
    );
    await client.query('COMMIT');
    return rows.map((row) => ({ tenantId: row.id, ownerId: row.owner_user_id }));
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });

async function main(): Promise<void> {
  const runStarted = performance.now();
  const cases: ComparisonCase[] = [];
  const cleanups: Array<() => Promise<unknown>> = [];
  const root = await mkdtemp(path.join(os.tmpdir(), 'tenantry-bench-storage-'));
  // nginx's workers run unprivileged when we are root: they must reach their directory.
  await chmod(root, 0o755);
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const database = await startBenchDatabase();
  cleanups.push(() => database.stop());
  try {
    const benchRedis = await startBenchRedis();
    cleanups.push(() => benchRedis.stop());
    const minio = await startMinio({ port: await getPort(), consolePort: await getPort(), dataDir: path.join(root, 'minio'), logFile: path.join(root, 'minio.log'), detached: false });
    cleanups.push(() => stopProcess(minio.pid));

    // The edge: its S3 host proxies to this MinIO; every other route to the echo upstream (unused here).
    const parts = await startEdgeBenchParts(database.urls.app_service, cleanups);
    const edgePort = await getPort();
    const edge = await startEdge({
      env: { ...parts.edgeEnv(parts.echoAddress), BASE_DOMAIN, EDGE_PORT: String(edgePort), EDGE_WORKER_PROCESSES: '1', S3_UPSTREAM: new URL(minio.endpoint).host },
      runtimeDir: path.join(root, 'edge'),
      detached: false,
    });
    cleanups.push(() => stopProcess(edge.pid));
    const s3Host = `s3.${BASE_DOMAIN}:${edgePort}`;

    const logFile = path.join(root, 'storage.log');
    const logStream = destination({ dest: logFile, sync: false });
    const logger = pino({ name: 'storage', level: config.BENCH_LOG_LEVEL }, logStream);
    const pool = createServicePool({ connectionString: database.urls.app_service, applicationName: 'tenantry-storage', logger, max: config.BENCH_POOL_SIZE });
    const admin = new pg.Pool({ connectionString: database.superuserUrl, max: 2 });
    const redis = new Redis(benchRedis.url);
    cleanups.push(async () => {
      await pool.end();
      await admin.end();
      redis.disconnect();
    });
    const credentials = { accessKey: minio.accessKey, secretKey: minio.secretKey, region: REGION };
    // As main.ts: clients are given URLs of the edge's S3 host; the service itself talks to MinIO.
    const objects = new ObjectStore({
      endpoint: minio.endpoint,
      publicEndpoint: `http://${s3Host}`,
      ...credentials,
      settings: { layout: config.BENCH_LAYOUT, sharedBucket: 'tenantry-bench-files' },
    });
    const keys = KeyRing.generate();
    const tokens = new TokenIssuer({ keys, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 3600 });
    const verifier = new TokenVerifier({ jwks: keys.jwks(), issuer: ISSUER, audience: AUDIENCE });
    const deps: StorageDependencies = { pool, redis, logger, verifier, objects, sts: null, uploadTtlSeconds: 900, downloadTtlSeconds: 300 };
    const service = createServiceServer(buildStorageApp(deps));
    const serviceUrl = await listen(service);
    cleanups.push(() => closeServer(service));

    // The baseline's signer: the same minio client, signing only, for the same public host.
    const signer = createS3Client(`http://${s3Host}`, credentials);
    const barePresign = (bucket: string, key: string) => {
      const policy = signer.newPostPolicy();
      policy.setBucket(bucket);
      policy.setKey(key);
      policy.setContentType(PRESIGN_TYPE);
      policy.setContentLengthRange(PRESIGN_SIZE, PRESIGN_SIZE);
      policy.setExpires(new Date(Date.now() + 900_000));
      const checksum = Buffer.from(PRESIGN_SHA256, 'hex').toString('base64');
      policy.policy.conditions.push(['eq', '$x-amz-checksum-algorithm', 'SHA256'], ['eq', '$x-amz-checksum-sha256', checksum]);
      policy.formData['x-amz-checksum-algorithm'] = 'SHA256';
      policy.formData['x-amz-checksum-sha256'] = checksum;
      return signer.presignedPostPolicy(policy);
    };
    const bareApp = express();
    bareApp.disable('x-powered-by');
    bareApp.post('/storage/uploads', express.json(), async (req, res) => {
      const body = req.body as { bucket: string; name: string };
      const { postURL, formData } = await barePresign('tenantry-bench-files', `${body.bucket}/${body.name}`);
      res.status(201).json({ url: postURL, fields: formData });
    });
    const bareServer = createServiceServer(bareApp);
    const bareUrl = await listen(bareServer);
    cleanups.push(() => closeServer(bareServer));

    const [large, ...tenants] = (await seedTenants(admin, config.BENCH_TENANTS + 1)) as [BenchTenant, ...BenchTenant[]];
    const tokenOf = (tenant: BenchTenant) => tokens.sign({ userId: tenant.ownerId, tenant: { id: tenant.tenantId, role: 'owner' } });
    const manyTokens = path.join(root, 'tokens-many.txt');
    await writeFile(manyTokens, `${tenants.map(tokenOf).join('\n')}\n`);
    const oneToken = path.join(root, 'tokens-one.txt');
    await writeFile(oneToken, `${tokenOf(tenants[0]!)}\n`);
    const largeToken = path.join(root, 'tokens-large.txt');
    await writeFile(largeToken, `${tokenOf(large)}\n`);
    const scriptFile = path.join(root, 'presign.lua');
    await writeFile(scriptFile, PRESIGN_SCRIPT);
    // Frees the run's reservations, so every round starts from the same per-tenant sums.
    const expirePending = () => admin.query("UPDATE file_uploads SET status = 'expired' WHERE status = 'pending'");

    // 1. Presign throughput.
    console.log(
      `presign: ${config.BENCH_ROUNDS} rounds of the bare loop, then wrk (${config.BENCH_CONNECTIONS} connections, ${config.BENCH_SECONDS} s) on the bare handler, ` +
        `the service over ${tenants.length} tenants and over 1 (${config.BENCH_LAYOUT} layout, ${database.source} Postgres)…`,
    );
    // Warm-ups: the JIT, the pool's connections and prepared statements, every tenant's bucket.
    await presignRound(bareUrl, scriptFile, manyTokens, 1, admin);
    await presignRound(serviceUrl, scriptFile, manyTokens, 2, admin);
    await expirePending();
    const loopRates: number[] = [];
    const bareRounds: PresignRound[] = [];
    const manyRounds: PresignRound[] = [];
    const oneRounds: PresignRound[] = [];
    const largeRounds: PresignRound[] = [];
    const loopBucket = objects.location(tenants[0]!.tenantId).bucket;
    for (let round = 0; round < config.BENCH_ROUNDS; round++) {
      loopRates.push(
        await measureThroughput({
          workers: 1,
          durationMs: Math.min(config.BENCH_SECONDS, 2) * 1000,
          maxIterationsPerWorker: 10_000_000,
          operation: () => barePresign(loopBucket, `${LOGICAL_BUCKET}/loop-${randomBytes(6).toString('hex')}.bin`),
        }),
      );
      bareRounds.push(await presignRound(bareUrl, scriptFile, manyTokens, config.BENCH_SECONDS, admin));
      const profiling = config.BENCH_PROFILE && round === 0 ? await startCpuProfile() : null;
      manyRounds.push(await presignRound(serviceUrl, scriptFile, manyTokens, config.BENCH_SECONDS, admin));
      if (profiling) printCpuProfile(`CPU profile of this process, first round over ${tenants.length} tenants`, await profiling.stop());
      await expirePending();
      oneRounds.push(await presignRound(serviceUrl, scriptFile, oneToken, config.BENCH_SECONDS, admin));
      await expirePending();
    }
    // Each part of a presign alone, one at a time, for one tenant.
    const tenant = tenants[1 % tenants.length]!;
    const token = tokenOf(tenant);
    const principal = verifier.verify(token);
    if (!principal) throw new Error('the bench token does not verify');
    const context = { principal, req: { get: () => undefined }, deps } as unknown as Context<unknown, unknown, unknown>;
    const caller = await storageCaller(context, 'files:write');
    const location = objects.location(tenant.tenantId);
    const partRun = randomBytes(6).toString('hex');
    const breakdown = {
      verifyUs: await microsecondsEach(2000, async () => verifier.verify(token)),
      accessUs: await microsecondsEach(500, () => storageCaller(context, 'files:write')),
      reserveUs: await microsecondsEach(500, (index) =>
        inCallerTenant(deps, caller, async (client) => {
          const name = `${partRun}/part-${index}.bin`;
          await client.query({
            name: 'storage-upload-insert-bench',
            text: `INSERT INTO file_uploads (tenant_id, bucket, name, size, content_type, sha256, created_by, expires_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, now() + interval '900 seconds') RETURNING id`,
            values: [caller.tenantId, LOGICAL_BUCKET, name, PRESIGN_SIZE, PRESIGN_TYPE, PRESIGN_SHA256, caller.userId],
          });
          await client.query({ name: 'storage-file-taken-bench', text: 'SELECT 1 FROM files WHERE bucket = $1 AND name = $2', values: [LOGICAL_BUCKET, name] });
        }),
      ),
      signUs: await microsecondsEach(2000, (index) =>
        objects.presignUpload({
          bucket: location.bucket,
          key: objects.key(location, LOGICAL_BUCKET, `${partRun}/sign-${index}.bin`),
          contentType: PRESIGN_TYPE,
          size: PRESIGN_SIZE,
          sha256Hex: PRESIGN_SHA256,
          expiresAt: new Date(Date.now() + 900_000),
        }),
      ),
      requestUs: await microsecondsEach(500, async (index) => {
        const answer = await fetch(`${serviceUrl}/storage/uploads`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ bucket: LOGICAL_BUCKET, name: `${partRun}/request-${index}.bin`, size: PRESIGN_SIZE, contentType: PRESIGN_TYPE, sha256: PRESIGN_SHA256 }),
        });
        await answer.arrayBuffer();
        if (answer.status !== 201) throw new Error(`a presign answered ${answer.status}`);
      }),
    };
    await expirePending();

    // Then one tenant stores many files (as completions leave them; one statement, so the
    // limit trigger sums once), and the statistics see them, as autovacuum would soon.
    const manyBesideLargeRounds: PresignRound[] = [];
    if (config.BENCH_LARGE_TENANT_FILES > 0) {
      await admin.query(
        `INSERT INTO files (tenant_id, bucket, name, size, content_type, sha256, uploaded_by)
         SELECT $1, 'archive', 'file-' || n || '.bin', 1048576, 'application/octet-stream', $2, $3 FROM generate_series(1, $4) AS n`,
        [large.tenantId, PRESIGN_SHA256, large.ownerId, config.BENCH_LARGE_TENANT_FILES],
      );
      await admin.query('VACUUM ANALYZE files');
      for (let round = 0; round < config.BENCH_ROUNDS; round++) {
        manyBesideLargeRounds.push(await presignRound(serviceUrl, scriptFile, manyTokens, config.BENCH_SECONDS, admin));
        await expirePending();
        largeRounds.push(await presignRound(serviceUrl, scriptFile, largeToken, config.BENCH_SECONDS, admin));
        await expirePending();
      }
    }
    const loopRate = median(loopRates);
    const bareRate = median(bareRounds.map((round) => round.requestsPerSecond));
    const manyRate = median(manyRounds.map((round) => round.requestsPerSecond));
    const oneRate = median(oneRounds.map((round) => round.requestsPerSecond));
    cases.push({ case: `presign req/s (bare signing loop → service, ${tenants.length} tenants)`, baseline: loopRate, candidate: manyRate, unit: 'req/s', higherIsBetter: true, goal: 0.5 });
    cases.push({ case: 'presign req/s (bare signing loop → service, 1 tenant)', baseline: loopRate, candidate: oneRate, unit: 'req/s', higherIsBetter: true });
    const largeLabel = `1 tenant holding ${config.BENCH_LARGE_TENANT_FILES.toLocaleString('en-US')} files`;
    if (largeRounds.length > 0) {
      const besideRate = median(manyBesideLargeRounds.map((round) => round.requestsPerSecond));
      cases.push({ case: `presign req/s (service, ${tenants.length} tenants → the same beside a tenant holding ${config.BENCH_LARGE_TENANT_FILES.toLocaleString('en-US')} files)`, baseline: manyRate, candidate: besideRate, unit: 'req/s', higherIsBetter: true });
      cases.push({ case: `presign req/s (service, 1 tenant → ${largeLabel})`, baseline: oneRate, candidate: median(largeRounds.map((round) => round.requestsPerSecond)), unit: 'req/s', higherIsBetter: true });
    }
    cases.push({ case: 'presign req/s (bare signing loop → bare Express handler)', baseline: loopRate, candidate: bareRate, unit: 'req/s', higherIsBetter: true });
    cases.push({ case: `presign req/s (bare Express handler → service, ${tenants.length} tenants)`, baseline: bareRate, candidate: manyRate, unit: 'req/s', higherIsBetter: true });
    cases.push({
      case: `presign p99 (bare Express handler → service, ${tenants.length} tenants)`,
      baseline: median(bareRounds.map((round) => round.p99Ms)),
      candidate: median(manyRounds.map((round) => round.p99Ms)),
      unit: 'ms',
      higherIsBetter: false,
    });

    // 2. Upload throughput.
    const uploadBytes = config.BENCH_UPLOAD_MIB * 2 ** 20;
    console.log(`upload: ${config.BENCH_UPLOAD_MIB} MiB, ${config.BENCH_UPLOAD_ROUNDS} rounds of direct PUT, presigned POST direct to MinIO and through the edge…`);
    const content = randomBytes(uploadBytes);
    const contentSha256 = createHash('sha256').update(content).digest('hex');
    const contentChecksum = Buffer.from(contentSha256, 'hex').toString('base64');
    const uploader = tenants[0]!;
    const uploaderToken = tokenOf(uploader);
    const uploaderLocation = objects.location(uploader.tenantId);
    const callService = async (method: string, route: string, body?: unknown) => {
      const answer = await fetch(`${serviceUrl}${route}`, {
        method,
        headers: { Authorization: `Bearer ${uploaderToken}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: answer.status, body: (await answer.json()) as Record<string, unknown> };
    };
    const putRates: number[] = [];
    const checkedPutRates: number[] = [];
    const directPostRates: number[] = [];
    const edgePostRates: number[] = [];
    const uploadRun = randomBytes(6).toString('hex');
    const minioUrl = new URL(minio.endpoint);
    for (let round = -1; round < config.BENCH_UPLOAD_ROUNDS; round++) {
      // Round -1 warms every path (connections, MinIO's and nginx's first large bodies) unmeasured.
      const putKey = objects.key(uploaderLocation, LOGICAL_BUCKET, `${uploadRun}/put-${round}.bin`);
      const putUrl = await objects.internal.presignedPutObject(uploaderLocation.bucket, putKey, 600);
      const put = await sendBody({ url: putUrl }, 'PUT', { 'Content-Type': 'application/octet-stream' }, [content], uploadBytes);
      if (put.status !== 200) throw new Error(`the direct PUT answered ${put.status}: ${put.text}`);
      await objects.internal.removeObject(uploaderLocation.bucket, putKey);
      // The same PUT asking MinIO to check the SHA-256, as every presigned POST's policy does.
      const checkedUrl = await objects.internal.presignedPutObject(uploaderLocation.bucket, `${putKey}.checked`, 600);
      const checkedPut = await sendBody({ url: checkedUrl }, 'PUT', { 'Content-Type': 'application/octet-stream', 'x-amz-checksum-sha256': contentChecksum }, [content], uploadBytes);
      if (checkedPut.status !== 200) throw new Error(`the direct PUT with a SHA-256 answered ${checkedPut.status}: ${checkedPut.text}`);
      const stored = await objects.stat(uploaderLocation.bucket, `${putKey}.checked`);
      if (stored?.sha256Base64 !== contentChecksum) throw new Error(`MinIO kept no SHA-256 of the checked PUT (${stored?.sha256Base64 ?? 'no object'})`);
      await objects.internal.removeObject(uploaderLocation.bucket, `${putKey}.checked`);

      for (const via of ['minio', 'edge'] as const) {
        const started = await callService('POST', '/storage/uploads', {
          bucket: LOGICAL_BUCKET,
          name: `${uploadRun}/post-${via}-${round}.bin`,
          size: uploadBytes,
          contentType: 'application/octet-stream',
          sha256: contentSha256,
        });
        if (started.status !== 201) throw new Error(`the upload's presign answered ${started.status}: ${JSON.stringify(started.body)}`);
        const post = started.body as { upload: { id: string }; url: string; fields: Record<string, string> };
        const form = multipartParts(post.fields, content);
        const signedUrl = new URL(post.url);
        const target =
          via === 'edge'
            ? { url: `http://127.0.0.1:${edgePort}${signedUrl.pathname}`, host: signedUrl.host }
            : { url: `${minioUrl.origin}${signedUrl.pathname}` };
        const sent = await sendBody(target, 'POST', { 'Content-Type': form.contentType }, form.parts, uploadBytes);
        if (sent.status !== 204 && sent.status !== 200 && sent.status !== 201) throw new Error(`the presigned POST (${via}) answered ${sent.status}: ${sent.text}`);
        const completed = await callService('POST', `/storage/uploads/${post.upload.id}/complete`);
        if (completed.status !== 200) throw new Error(`completing the upload (${via}) answered ${completed.status}: ${JSON.stringify(completed.body)}`);
        await objects.internal.removeObject(uploaderLocation.bucket, objects.key(uploaderLocation, LOGICAL_BUCKET, `${uploadRun}/post-${via}-${round}.bin`));
        if (round >= 0) (via === 'edge' ? edgePostRates : directPostRates).push(sent.mibPerSecond);
      }
      if (round >= 0) putRates.push(put.mibPerSecond);
      if (round >= 0) checkedPutRates.push(checkedPut.mibPerSecond);
    }
    const putRate = median(putRates);
    const checkedPutRate = median(checkedPutRates);
    const directPostRate = median(directPostRates);
    const edgePostRate = median(edgePostRates);
    cases.push({ case: `upload MiB/s (direct PUT, root → presigned POST via the edge)`, baseline: putRate, candidate: edgePostRate, unit: 'MiB/s', higherIsBetter: true, goal: 0.9 });
    cases.push({ case: 'upload MiB/s (direct PUT, root → presigned POST direct)', baseline: putRate, candidate: directPostRate, unit: 'MiB/s', higherIsBetter: true });
    cases.push({ case: 'upload MiB/s (direct PUT, root → the same with a SHA-256 to check)', baseline: putRate, candidate: checkedPutRate, unit: 'MiB/s', higherIsBetter: true });
    cases.push({ case: 'upload MiB/s (direct PUT with a SHA-256 → presigned POST via the edge)', baseline: checkedPutRate, candidate: edgePostRate, unit: 'MiB/s', higherIsBetter: true });
    cases.push({ case: 'upload MiB/s (presigned POST direct → via the edge)', baseline: directPostRate, candidate: edgePostRate, unit: 'MiB/s', higherIsBetter: true });

    printComparison(
      `storage — presign: wrk 1 thread, ${config.BENCH_CONNECTIONS} connections, ${config.BENCH_ROUNDS} × ${config.BENCH_SECONDS} s per side (medians), ` +
        `${config.BENCH_LAYOUT} layout, pool ${config.BENCH_POOL_SIZE}, log level ${config.BENCH_LOG_LEVEL}; upload: ${config.BENCH_UPLOAD_MIB} MiB × ${config.BENCH_UPLOAD_ROUNDS} rounds (medians); ${os.cpus().length} CPUs`,
      cases,
    );
    logStream.flushSync();
    const warnings = readFileSync(logFile, 'utf8').split('\n').filter((line) => line && (JSON.parse(line) as { level: number }).level >= 40);
    console.log(`\nthe service logged ${warnings.length} warning(s) or error(s)${warnings.length > 0 ? `, first: ${warnings.slice(0, 3).join('\n')}` : ''}`);
    const rates = (rounds: readonly { requestsPerSecond: number }[]) => rounds.map((round) => Math.round(round.requestsPerSecond)).join(' / ');
    const cpu = (rounds: readonly PresignRound[]) => {
      const postgres = median(rounds.map((round) => round.postgresCpuUsPerRequest ?? Number.NaN));
      return `Node ${median(rounds.map((round) => round.nodeCpuUsPerRequest)).toFixed(0)} µs, Postgres ${Number.isNaN(postgres) ? 'not readable' : `${postgres.toFixed(0)} µs`}`;
    };
    console.log(
      `\nloop ${loopRates.map(Math.round).join(' / ')} signs/s; bare handler ${rates(bareRounds)} req/s; service ${rates(manyRounds)} req/s over ${tenants.length} tenants, ${rates(oneRounds)} over 1${largeRounds.length > 0 ? `; then ${rates(manyBesideLargeRounds)} over ${tenants.length} beside the large one, ${rates(largeRounds)} on it` : ''}` +
        `\nCPU per request: bare handler ${cpu(bareRounds)}; service over ${tenants.length} tenants ${cpu(manyRounds)}; over 1 ${cpu(oneRounds)}${largeRounds.length > 0 ? `; over ${tenants.length} beside the large one ${cpu(manyBesideLargeRounds)}; on it ${cpu(largeRounds)}` : ''}` +
        `\none presign's parts alone (median, one at a time): token ${breakdown.verifyUs.toFixed(0)} µs, access check ${breakdown.accessUs.toFixed(0)} µs (1 transaction), ` +
        `reservation ${breakdown.reserveUs.toFixed(0)} µs (1 transaction: INSERT + trigger, name check), signing ${breakdown.signUs.toFixed(0)} µs; ` +
        `the whole request over HTTP ${breakdown.requestUs.toFixed(0)} µs` +
        `\nupload MiB/s: PUT ${putRates.map((rate) => rate.toFixed(0)).join(' / ')}; PUT with a SHA-256 ${checkedPutRates.map((rate) => rate.toFixed(0)).join(' / ')}; POST direct ${directPostRates.map((rate) => rate.toFixed(0)).join(' / ')}; ` +
        `POST via the edge ${edgePostRates.map((rate) => rate.toFixed(0)).join(' / ')}`,
    );
    const file = await writeResults('storage', cases, {
      config,
      rounds: { loop_per_second: loopRates, bare_handler: bareRounds, service_many_tenants: manyRounds, service_one_tenant: oneRounds, service_beside_large_tenant: manyBesideLargeRounds, service_large_tenant: largeRounds },
      breakdown_us: breakdown,
      upload_mib_per_second: { put: putRates, put_checked: checkedPutRates, post_direct: directPostRates, post_edge: edgePostRates },
      load_average: os.loadavg(),
      postgres: database.source,
    });
    console.log(`\nwrote ${file}; total ${((performance.now() - runStarted) / 1000).toFixed(0)} s`);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: Error) => console.error(`cleanup failed: ${error.message}`));
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
