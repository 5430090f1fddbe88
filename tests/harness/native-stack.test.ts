import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import getPort from 'get-port';
import pg from 'pg';
import { afterAll, describe, expect, test } from 'vitest';
import { isAlive } from '../../scripts/native/services.js';

const run = promisify(execFile);
const repositoryRoot = path.resolve(import.meta.dirname, '../..');
const PORT_VARIABLES = [
  'STACK_POSTGRES_PORT', 'STACK_REDIS_PORT', 'STACK_S3_PORT', 'STACK_S3_CONSOLE_PORT', 'STACK_STRIPE_PORT', 'STACK_STRIPE_HTTPS_PORT',
  'STACK_RESOLVER_PORT', 'STACK_AUTH_PORT', 'STACK_BILLING_PORT', 'STACK_STORAGE_PORT', 'STACK_SMTP_PORT', 'STACK_MAIL_HTTP_PORT', 'EDGE_PORT',
];

/** A GET to the edge with the Host header given (fetch cannot set Host; *.localhost may not resolve here). */
function getWithHost(port: string, host: string, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port: Number(port), path: target, headers: { host } }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    outgoing.on('error', reject).end();
  });
}

interface StackState {
  services: Array<{ name: string; pid: number }>;
}

/** `npm run stack:…` as a person runs it, on free ports and a private .stack directory. */
describe('npm run stack:up', () => {
  let env: NodeJS.ProcessEnv;
  let stackDir: string;
  const stack = async (...args: string[]) => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(repositoryRoot, 'scripts/native/stack.ts'), ...args], { env, cwd: repositoryRoot });
    return stdout;
  };

  afterAll(async () => {
    if (stackDir) {
      await stack('down', '--purge').catch(() => undefined);
      await rm(stackDir, { recursive: true, force: true });
    }
  });

  test('a taken port is named before anything starts; when one service has stopped, says which (with its log) and restarts it; the data is kept', async () => {
    stackDir = await mkdtemp(path.join(os.tmpdir(), 'native-stack-'));
    // Run as root, Postgres drops to its own user, which must reach the data directory.
    await chmod(stackDir, 0o755);
    const ports = Object.fromEntries(await Promise.all(PORT_VARIABLES.map(async (name) => [name, String(await getPort())] as const)));
    env = { PATH: process.env.PATH, HOME: process.env.HOME, TENANTRY_CACHE_DIR: process.env.TENANTRY_CACHE_DIR, STACK_DIR: path.join(stackDir, '.stack'), ...ports };
    // A port someone else holds is named with its variable before anything starts.
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(Number(ports.STACK_AUTH_PORT), '127.0.0.1', resolve));
    try {
      await expect(stack('up')).rejects.toMatchObject({
        stderr: expect.stringContaining(`port ${ports.STACK_AUTH_PORT} (STACK_AUTH_PORT) is in use by another program`),
      });
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }

    await stack('up');
    const state = JSON.parse(await readFile(path.join(stackDir, '.stack/state.json'), 'utf8')) as StackState;
    const catcher = state.services.find((service) => service.name === 'mail-catcher')!;
    const stackEnv = await readFile(path.join(stackDir, '.stack/env'), 'utf8');
    expect(stackEnv).toContain(`PUBLIC_URL=http://127.0.0.1:${ports.STACK_MAIL_HTTP_PORT}`);
    expect(stackEnv).toContain(`SMTP_URL=smtp://127.0.0.1:${ports.STACK_SMTP_PORT}`);
    expect(stackEnv).toContain(`BILLING_URL=http://127.0.0.1:${ports.STACK_BILLING_PORT}`);
    const webhookSecret = /^STRIPE_WEBHOOK_SECRETS=(whsec_\S+)$/m.exec(stackEnv)?.[1];
    expect(webhookSecret).toBeDefined();
    // The billing service runs behind the edge: its API description answers through it.
    const billingApi = await fetch(`http://127.0.0.1:${ports.EDGE_PORT}/billing/openapi.json`);
    expect(billingApi.status).toBe(200);
    expect(((await billingApi.json()) as { paths: Record<string, unknown> }).paths).toHaveProperty(['/billing/subscription']);
    // So does the storage service, and the S3 host where its presigned URLs point reaches MinIO.
    expect(stackEnv).toContain(`STORAGE_URL=http://127.0.0.1:${ports.STACK_STORAGE_PORT}`);
    expect(stackEnv).toContain(`S3_PUBLIC_ENDPOINT=http://s3.tenantry.localhost:${ports.EDGE_PORT}`);
    expect(stackEnv).toMatch(/^STORAGE_LAYOUT=bucket$/m);
    const storageApi = await fetch(`http://127.0.0.1:${ports.EDGE_PORT}/storage/openapi.json`);
    expect(storageApi.status).toBe(200);
    expect(((await storageApi.json()) as { paths: Record<string, unknown> }).paths).toHaveProperty(['/storage/uploads']);
    const s3Health = await getWithHost(ports.EDGE_PORT!, `s3.tenantry.localhost:${ports.EDGE_PORT}`, '/minio/health/live');
    expect(s3Health.status).toBe(200);
    // Anonymous: MinIO's own refusal, in S3's XML, not the edge's.
    const anonymous = await getWithHost(ports.EDGE_PORT!, `s3.tenantry.localhost:${ports.EDGE_PORT}`, '/tenantry-files/');
    expect([anonymous.status, anonymous.body]).toEqual([expect.any(Number), expect.stringContaining('<Error><Code>')]);
    expect(anonymous.status).toBeGreaterThanOrEqual(400);

    const adminUrl = /^PLATFORM_ADMIN_DATABASE_URL=(.*)$/m.exec(stackEnv)![1]!;
    const query = async (sql: string) => {
      const client = new pg.Client(adminUrl);
      await client.connect();
      try {
        return (await client.query<{ email: string }>(sql)).rows;
      } finally {
        await client.end();
      }
    };
    await query("INSERT INTO users (email) VALUES ('kept@stack.test')");

    process.kill(catcher.pid, 'SIGKILL');
    while (isAlive(catcher.pid)) await new Promise((resolve) => setTimeout(resolve, 50));
    await expect(stack('status')).rejects.toMatchObject({ stdout: expect.stringMatching(/mail-catcher\s+STOPPED/) });

    const output = await stack('up');
    expect(output).toContain(`mail-catcher (pid ${catcher.pid}) has stopped; its log`);
    expect(output).toMatch(/restarting the stack \(data in .* is kept\): stopping postgres, redis, minio, stripe-mock, resolver, auth, billing, storage, edge/);
    expect(output).not.toContain('the stack is already running');
    const status = JSON.parse(await stack('status', '--json')) as { running: boolean; services: Array<{ name: string; running: boolean }> };
    expect(status.running).toBe(true);
    expect(status.services.map((service) => service.name)).toContain('mail-catcher');
    const page = await fetch(`http://127.0.0.1:${ports.STACK_MAIL_HTTP_PORT}/`);
    expect(page.status).toBe(200);
    expect(await query("SELECT email FROM users WHERE email = 'kept@stack.test'")).toEqual([{ email: 'kept@stack.test' }]);
    // The webhook signing secret is kept in secrets.json, as the other secrets: a restart keeps it.
    expect(await readFile(path.join(stackDir, '.stack/env'), 'utf8')).toContain(`STRIPE_WEBHOOK_SECRETS=${webhookSecret}`);

    expect(await stack('up')).toContain('the stack is already running');
  }, 300_000);
});
