import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import pRetry, { AbortError } from 'p-retry';
import pg from 'pg';
import { findBinary } from './binaries.js';

/** A server process this code started. */
export interface NativeProcess {
  name: string;
  pid: number;
  child?: ChildProcess;
}

export interface StartOptions {
  port: number;
  dataDir: string;
  logFile: string;
  /** Detached processes outlive this one (the native stack); attached ones die with it (tests). */
  detached: boolean;
}

export interface PostgresInstance extends NativeProcess {
  adminUrl: string;
}
export interface RedisInstance extends NativeProcess {
  /** redis://default:<password>@127.0.0.1:<port>: the default user needs the password. */
  url: string;
  password: string;
  aclFile: string;
}
export interface S3Instance extends NativeProcess {
  endpoint: string;
  accessKey: string;
  secretKey: string;
}
export interface StripeMockInstance extends NativeProcess {
  apiBase: string;
}

const READY_TIMEOUT_MS = 60_000;

/** Retries `probe` with backoff until it resolves or the process dies; then the log tail is the error. */
export async function waitUntilReady(name: string, child: ChildProcess | undefined, logFile: string, probe: () => Promise<void>) {
  let exited: string | null = null;
  child?.once('exit', (code, signal) => {
    exited = `${name} exited (${signal ?? `code ${code}`}) while starting; see ${logFile}`;
  });
  const started = Date.now();
  await pRetry(
    async () => {
      if (exited) throw new AbortError(exited);
      await probe();
    },
    {
      retries: 200,
      minTimeout: 50,
      maxTimeout: 500,
      shouldRetry: () => Date.now() - started < READY_TIMEOUT_MS,
    },
  ).catch((error: Error) => {
    throw new Error(`${name} did not become ready: ${error.message} (log: ${logFile})`);
  });
}

/** A server that finds its port taken may exit while the probe reaches whatever holds the port. */
export async function assertPortFree(port: number, name: string): Promise<void> {
  // A listen attempt, not get-port: get-port reserves ports it handed out, so it would say
  // "taken" about the very port it just chose for us.
  await new Promise<void>((resolve, reject) => {
    const probe = createServer()
      .once('error', () => reject(new Error(`${name} cannot start: port ${port} on 127.0.0.1 is in use`)))
      .listen(port, '127.0.0.1', () => probe.close(() => resolve()));
  });
}

export function launch(name: string, command: string, args: string[], options: StartOptions & { uid?: number; gid?: number; env?: NodeJS.ProcessEnv }): NativeProcess & { child: ChildProcess } {
  mkdirSync(path.dirname(options.logFile), { recursive: true });
  const log = openSync(options.logFile, 'a');
  const child = spawn(command, args, {
    stdio: ['ignore', log, log],
    detached: options.detached,
    uid: options.uid,
    gid: options.gid,
    env: { ...process.env, ...options.env },
  });
  closeSync(log);
  if (child.pid === undefined) throw new Error(`${name} could not be started (${command})`);
  if (options.detached) child.unref();
  return { name, pid: child.pid, child };
}

/** Postgres refuses to run as root; when we are root it runs as the `postgres` system user. */
function postgresUser(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  const gid = id('-g');
  if (!Number.isInteger(uid) || uid <= 0) throw new Error('running as root needs a `postgres` system user: run scripts/install-native-deps.sh');
  return { uid, gid };
}

export async function startPostgres(options: StartOptions & { superuserPassword?: string; durable?: boolean }): Promise<PostgresInstance> {
  await assertPortFree(options.port, 'postgres');
  const postgres = findBinary('postgres');
  const initdb = findBinary('initdb');
  const user = postgresUser();
  const password = options.superuserPassword ?? randomBytes(18).toString('base64url');
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  if (user.uid !== undefined) chownSync(options.dataDir, user.uid, user.gid!);
  // initdb wants an empty data directory, so the password file sits beside it.
  const passwordFile = `${options.dataDir}.superuser`;

  if (!existsSync(path.join(options.dataDir, 'PG_VERSION'))) {
    writeFileSync(passwordFile, password, { mode: 0o600 });
    if (user.uid !== undefined) chownSync(passwordFile, user.uid, user.gid!);
    const result = spawnSync(
      initdb,
      ['-D', options.dataDir, '-U', 'postgres', `--pwfile=${passwordFile}`, '--auth-local=scram-sha-256', '--auth-host=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-sync'],
      { encoding: 'utf8', uid: user.uid, gid: user.gid },
    );
    rmSync(passwordFile, { force: true });
    if (result.status !== 0) throw new Error(`initdb failed: ${result.stderr || result.stdout}`);
  }

  const settings = [
    '-D', options.dataDir,
    '-p', String(options.port),
    '-k', options.dataDir,
    '-c', 'listen_addresses=127.0.0.1',
    '-c', 'max_connections=200',
    '-c', 'shared_buffers=256MB',
    ...(options.durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
  ];
  const processInfo = launch('postgres', postgres, settings, { ...options, ...user });
  const adminUrl = `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${options.port}/postgres`;
  await waitUntilReady('postgres', processInfo.child, options.logFile, async () => {
    const client = new pg.Client({ connectionString: adminUrl });
    try {
      await client.connect();
      await client.query('SELECT 1');
    } finally {
      await client.end().catch(() => undefined);
    }
  });
  return { ...processInfo, adminUrl };
}

/** Where a native Redis keeps its users: the default user's line and every tenant's ACL user. */
export const redisAclFile = (dataDir: string): string => path.join(dataDir, 'users.acl');
const redisPasswordFile = (dataDir: string): string => path.join(dataDir, 'default.password');

/**
 * The ACL file with the default user's line set to `password` (its SHA-256, never the
 * password itself); every other user in it is kept, so tenants' users survive a restart.
 */
function writeDefaultRedisUser(aclFile: string, password: string): void {
  const line = `user default on #${createHash('sha256').update(password).digest('hex')} ~* &* +@all`;
  const others = existsSync(aclFile)
    ? readFileSync(aclFile, 'utf8')
        .split('\n')
        .filter((existing) => existing.trim() !== '' && !/^user\s+default\s/.test(existing))
    : [];
  writeFileSync(aclFile, [line, ...others, ''].join('\n'), { mode: 0o600 });
}

/**
 * A Redis whose default user has a password (`password`, else the one this data directory
 * was started with before, else a new one kept beside the data), with its users in an ACL
 * file, so a restart on the same directory keeps the URL and every tenant's user.
 */
export async function startRedis(options: StartOptions & { password?: string }): Promise<RedisInstance> {
  await assertPortFree(options.port, 'redis');
  const redis = findBinary('redis-server');
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const passwordFile = redisPasswordFile(options.dataDir);
  const password = options.password ?? (existsSync(passwordFile) ? readFileSync(passwordFile, 'utf8').trim() : randomBytes(18).toString('base64url'));
  if (!options.password) writeFileSync(passwordFile, password, { mode: 0o600 });
  const aclFile = redisAclFile(options.dataDir);
  writeDefaultRedisUser(aclFile, password);
  const processInfo = launch(
    'redis',
    redis,
    [
      '--port', String(options.port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--dir', options.dataDir,
      '--aclfile', aclFile,
      '--daemonize', 'no',
    ],
    options,
  );
  const url = `redis://default:${encodeURIComponent(password)}@127.0.0.1:${options.port}`;
  await waitUntilReady('redis', processInfo.child, options.logFile, async () => {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
    } finally {
      client.disconnect();
    }
  });
  return { ...processInfo, url, password, aclFile };
}

export async function startMinio(options: StartOptions & { consolePort: number; accessKey?: string; secretKey?: string }): Promise<S3Instance> {
  await assertPortFree(options.port, 'minio');
  const minio = findBinary('minio');
  mkdirSync(options.dataDir, { recursive: true });
  const accessKey = options.accessKey ?? `tenantry${randomBytes(4).toString('hex')}`;
  const secretKey = options.secretKey ?? randomBytes(24).toString('base64url');
  const processInfo = launch(
    'minio',
    minio,
    ['server', options.dataDir, '--address', `127.0.0.1:${options.port}`, '--console-address', `127.0.0.1:${options.consolePort}`, '--quiet'],
    { ...options, env: { MINIO_ROOT_USER: accessKey, MINIO_ROOT_PASSWORD: secretKey, MINIO_BROWSER: 'off', MINIO_UPDATE: 'off' } },
  );
  const endpoint = `http://127.0.0.1:${options.port}`;
  await waitUntilReady('minio', processInfo.child, options.logFile, async () => {
    const response = await fetch(`${endpoint}/minio/health/ready`);
    if (!response.ok) throw new Error(`health answered ${response.status}`);
  });
  return { ...processInfo, endpoint, accessKey, secretKey };
}

/**
 * stripe-mock serves HTTPS too, on 12112 of every interface unless told otherwise.
 * `fixturesFile` replaces its bundled fixtures (a full fixtures file: tests that need Stripe
 * to answer a given state copy the bundled one and change the objects they read back).
 */
export async function startStripeMock(
  options: Omit<StartOptions, 'dataDir'> & { httpsPort: number; fixturesFile?: string },
): Promise<StripeMockInstance> {
  await assertPortFree(options.port, 'stripe-mock');
  await assertPortFree(options.httpsPort, 'stripe-mock (HTTPS)');
  const stripeMock = findBinary('stripe-mock');
  const args = ['-http-addr', `127.0.0.1:${options.port}`, '-https-addr', `127.0.0.1:${options.httpsPort}`];
  if (options.fixturesFile) args.push('-fixtures', options.fixturesFile);
  const processInfo = launch('stripe-mock', stripeMock, args, { ...options, dataDir: '' });
  const apiBase = `http://127.0.0.1:${options.port}`;
  await waitUntilReady('stripe-mock', processInfo.child, options.logFile, async () => {
    const response = await fetch(`${apiBase}/v1/customers?limit=1`, { headers: { Authorization: 'Bearer sk_test_tenantry' } });
    if (!response.ok) throw new Error(`answered ${response.status}`);
  });
  return { ...processInfo, apiBase };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops a server and waits for it to go: SIGINT first (Postgres's fast shutdown, and a
 * clean exit for the others), SIGKILL when it has not gone after the grace period.
 */
export async function stopProcess(pid: number, graceMs = 10_000): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  if (isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
