import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { findBinary } from '../../scripts/native/binaries.js';
import { stopProcess, waitUntilReady } from '../../scripts/native/services.js';
import { rotateTenantRedisPassword, tenantRedisUsername } from '../../services/shared/src/redis-acl.js';

const ENTRYPOINT = path.resolve(import.meta.dirname, '../../docker/redis-entrypoint.sh');

// docker/redis-entrypoint.sh as compose runs it, with the image's docker-entrypoint.sh
// replaced by one that starts this machine's redis-server on a free port.
let root: string;
let port: number;
let child: ChildProcess | undefined;
const clients: Redis[] = [];

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'tenantry-redis-entrypoint-'));
  port = await getPort();
  const shim = path.join(root, 'bin', 'docker-entrypoint.sh');
  mkdirSync(path.dirname(shim));
  // The image's entry point gets `redis-server <args>`: run ours with the args that follow.
  writeFileSync(shim, `#!/bin/sh\nshift\nexec "${findBinary('redis-server')}" --port ${port} --bind 127.0.0.1 --dir "${root}" --save '' "$@"\n`);
  chmodSync(shim, 0o755);
});

afterAll(async () => {
  for (const client of clients) client.disconnect();
  if (child?.pid) await stopProcess(child.pid);
  await rm(root, { recursive: true, force: true });
});

async function start(password: string): Promise<void> {
  const passwordFile = path.join(root, 'REDIS_PASSWORD');
  writeFileSync(passwordFile, password);
  const logFile = path.join(root, 'redis.log');
  const log = openSync(logFile, 'a');
  child = spawn('/bin/sh', [ENTRYPOINT, '--appendonly', 'no'], {
    stdio: ['ignore', log, log],
    env: { PATH: `${path.join(root, 'bin')}:${process.env.PATH}`, REDIS_PASSWORD_FILE: passwordFile, REDIS_ACL_FILE: path.join(root, 'users.acl') },
  });
  closeSync(log);
  await waitUntilReady('redis (entrypoint)', child, logFile, async () => {
    const probe = new Redis({ port, password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
    } finally {
      probe.disconnect();
    }
  });
}

async function stop(): Promise<void> {
  if (child?.pid) await stopProcess(child.pid);
  child = undefined;
}

function client(options: { username?: string; password?: string }): Redis {
  const redis = new Redis({ port, ...options, lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  clients.push(redis);
  return redis;
}

test('compose: the entry point gives the default user its password, keeps tenant users across restarts, and takes a new password from .env', async () => {
  const first = `first-${randomUUID()}`;
  await start(first);
  const anonymous = client({});
  await anonymous.connect();
  await expect(anonymous.call('PING')).rejects.toThrow(/NOAUTH/);
  const platform = client({ password: first });
  await platform.connect();
  const tenant = randomUUID();
  const credentials = await rotateTenantRedisPassword(platform, tenant);
  const acl = readFileSync(path.join(root, 'users.acl'), 'utf8');
  expect(acl).toContain(tenantRedisUsername(tenant));
  // The hash, never the password.
  expect(acl).not.toContain(first);
  await stop();

  const second = `second-${randomUUID()}`;
  await start(second);
  const again = client({});
  await again.connect();
  await expect(again.call('AUTH', 'default', first)).rejects.toThrow(/WRONGPASS/);
  expect(await again.call('AUTH', 'default', second)).toBe('OK');
  const tenantUser = client(credentials);
  await tenantUser.connect();
  expect(await tenantUser.call('SET', `tenant:{${tenant}}:app:k`, 'v')).toBe('OK');
  await expect(tenantUser.call('KEYS', '*')).rejects.toThrow(/NOPERM/);
  const lines = readFileSync(path.join(root, 'users.acl'), 'utf8').trim().split('\n');
  expect(lines.filter((line) => line.startsWith('user default '))).toHaveLength(1);
});
