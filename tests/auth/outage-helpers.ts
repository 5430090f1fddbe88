import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import { startPostgres, startRedis, stopProcess, type PostgresInstance, type RedisInstance } from '../../scripts/native/services.js';
import { bootstrapDatabase, LOGIN_ROLES, roleUrl, type LoginRole } from '../../services/shared/src/db/bootstrap.js';
import { migrate } from '../../services/shared/src/db/migrations.js';
import { services } from '../helpers/database.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A temporary directory of the test's own; Postgres (run as its system user under root) must reach it. */
async function scratchDirectory(label: string): Promise<{ root: string; remove(): Promise<void> }> {
  const root = await mkdtemp(path.join(os.tmpdir(), `tenantry-${label}-`));
  await chmod(root, 0o711);
  return { root, remove: () => rm(root, { recursive: true, force: true }) };
}

/**
 * A Postgres server of this test's own, migrated, that it may stop and start again: the
 * shared test server is never restarted.
 */
export class DedicatedPostgres {
  private instance: PostgresInstance | undefined;

  private constructor(
    private readonly directory: { root: string; remove(): Promise<void> },
    private readonly port: number,
    private readonly superuserPassword: string,
    readonly passwords: Record<LoginRole, string>,
    readonly database: string,
  ) {}

  static async start(): Promise<DedicatedPostgres> {
    const directory = await scratchDirectory('pg');
    const passwords = Object.fromEntries(LOGIN_ROLES.map((role) => [role, randomBytes(12).toString('base64url')])) as Record<LoginRole, string>;
    const server = new DedicatedPostgres(directory, await getPort(), randomBytes(12).toString('base64url'), passwords, 'tenantry');
    await server.up();
    await bootstrapDatabase({ adminUrl: server.adminUrl, database: server.database, passwords });
    await migrate({ databaseUrl: server.url('tenantry_owner'), directory: services().migrationsDir });
    return server;
  }

  get adminUrl(): string {
    return `postgresql://postgres:${encodeURIComponent(this.superuserPassword)}@127.0.0.1:${this.port}/postgres`;
  }

  url(role: LoginRole): string {
    return roleUrl(this.adminUrl, role, this.passwords[role], this.database);
  }

  /** Starts the server (the same data directory and port each time) and waits until it answers. */
  async up(): Promise<void> {
    this.instance = await startPostgres({
      port: this.port,
      dataDir: path.join(this.directory.root, 'data'),
      logFile: path.join(this.directory.root, 'postgres.log'),
      detached: false,
      superuserPassword: this.superuserPassword,
    });
  }

  /** Fast shutdown (SIGINT): every session is terminated with 57P01, as in a restart. */
  async down(): Promise<void> {
    if (this.instance) await stopProcess(this.instance.pid);
    this.instance = undefined;
  }

  /**
   * Hung: the postmaster and every backend stopped (SIGSTOP). Connections stay open and
   * new ones are accepted by the kernel, but nothing answers: a frozen host, a partition.
   */
  freeze(): void {
    for (const pid of this.processIds()) process.kill(pid, 'SIGSTOP');
  }

  thaw(): void {
    for (const pid of this.processIds()) process.kill(pid, 'SIGCONT');
  }

  private processIds(): number[] {
    const postmaster = this.instance!.pid;
    const children = spawnSync('ps', ['-o', 'pid=', '--ppid', String(postmaster)], { encoding: 'utf8' })
      .stdout.split('\n')
      .map((line) => Number(line.trim()))
      .filter((pid) => Number.isInteger(pid) && pid > 0);
    return [postmaster, ...children];
  }

  async remove(): Promise<void> {
    if (this.instance) this.thaw();
    await this.down();
    await this.directory.remove();
  }
}

/** A redis-server of this test's own, to pause (SIGSTOP) and kill. */
export class DedicatedRedis {
  private constructor(
    private readonly directory: { root: string; remove(): Promise<void> },
    private readonly port: number,
    private readonly password: string,
    private instance: RedisInstance | undefined,
  ) {}

  static async start(): Promise<DedicatedRedis> {
    const directory = await scratchDirectory('redis');
    const redis = new DedicatedRedis(directory, await getPort(), randomBytes(12).toString('hex'), undefined);
    await redis.up();
    return redis;
  }

  get url(): string {
    // The password startRedis keeps in the data directory: the same across down() and up().
    return `redis://default:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    this.instance = await startRedis({ port: this.port, password: this.password, dataDir: path.join(this.directory.root, 'data'), logFile: path.join(this.directory.root, 'redis.log'), detached: false });
  }

  /** Hung: the server keeps its connections open and answers nothing. */
  pause(): void {
    process.kill(this.instance!.pid, 'SIGSTOP');
  }

  resume(): void {
    process.kill(this.instance!.pid, 'SIGCONT');
  }

  async down(): Promise<void> {
    if (!this.instance) return;
    this.resume();
    await stopProcess(this.instance.pid);
    this.instance = undefined;
  }

  async remove(): Promise<void> {
    await this.down();
    await this.directory.remove();
  }
}

/** A service started exactly as in production: `main.ts` in a child process, configured by its environment. */
export interface ServiceProcess {
  base: string;
  child: ChildProcess;
  /** Everything it wrote, for failure messages. */
  output(): string;
  alive(): boolean;
  stop(): Promise<number | null>;
}

export async function startServiceProcess(entry: string, env: Record<string, string>, readyPath: string): Promise<ServiceProcess> {
  const port = await getPort();
  const portVariable = entry.includes('resolver') ? 'RESOLVER_PORT' : 'AUTH_PORT';
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env, [portVariable]: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const base = `http://127.0.0.1:${port}`;
  const alive = () => child.exitCode === null && child.signalCode === null;
  for (let attempt = 0; ; attempt++) {
    if (!alive()) throw new Error(`${entry} exited while starting:\n${output}`);
    const status = await fetch(`${base}${readyPath}`).then((response) => response.status, () => 0);
    if (status === 200) break;
    if (attempt > 150) throw new Error(`${entry} did not start:\n${output}`);
    await sleep(100);
  }
  return {
    base,
    child,
    output: () => output,
    alive,
    async stop() {
      if (!alive()) return child.exitCode;
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      return exited;
    },
  };
}

export interface Answer {
  status: number;
  body: unknown;
  ms: number;
}

/** One HTTP request that always resolves: a connection error is status 0; `timeoutMs` bounds it. */
export async function call(url: string, init: RequestInit & { json?: unknown } = {}, timeoutMs = 10_000): Promise<Answer> {
  const started = Date.now();
  const { json, ...rest } = init;
  try {
    const response = await fetch(url, {
      ...rest,
      headers: { ...(json === undefined ? {} : { 'content-type': 'application/json' }), ...(rest.headers as Record<string, string> | undefined) },
      body: json === undefined ? rest.body : JSON.stringify(json),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, body, ms: Date.now() - started };
  } catch {
    return { status: 0, body: null, ms: Date.now() - started };
  }
}
