import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startRedis, stopProcess, type RedisInstance } from '../../scripts/native/services.js';
import {
  ensureTenantRedisUser,
  removeTenantRedisUser,
  rotateTenantRedisPassword,
  tenantRedisUsername,
} from '../../services/shared/src/redis-acl.js';
import { tenantRedis } from '../../services/shared/src/tenant-redis.js';

// A Redis of this file's own: the tests restart it, and its ACL file is theirs to read.
let server: RedisInstance;
let port: number;
let dataDir: string;
let admin: Redis;
const clients: Redis[] = [];

const startServer = async () => {
  server = await startRedis({ port, dataDir, logFile: path.join(dataDir, 'redis.log'), detached: false });
};

/** A plain connection with no credentials and no reconnection: what an app (or an attacker) opens. */
async function connect(): Promise<Redis> {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  clients.push(client);
  await client.connect();
  return client;
}

async function loginAs(credentials: { username: string; password: string }): Promise<Redis> {
  const client = await connect();
  await client.call('AUTH', credentials.username, credentials.password);
  return client;
}

const refused = /NOPERM/;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'tenantry-redis-acl-'));
  port = await getPort();
  await startServer();
  admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
  admin.on('error', () => undefined);
});

afterAll(async () => {
  for (const client of clients) client.disconnect();
  admin?.disconnect();
  if (server) await stopProcess(server.pid);
  await rm(dataDir, { recursive: true, force: true });
});

describe("a tenant's Redis user reaches its app keys and channels, nothing else (refused by Redis)", () => {
  const a = randomUUID();
  const b = randomUUID();
  let userA: Redis;

  beforeAll(async () => {
    await ensureTenantRedisUser(admin, a, { enabled: true });
    await ensureTenantRedisUser(admin, b, { enabled: true });
    userA = await loginAs(await rotateTenantRedisPassword(admin, a));
  });

  test("its own app keys and channels work; B's keys and channels are refused", async () => {
    const keysA = tenantRedis(admin, a);
    const keysB = tenantRedis(admin, b);
    expect(await userA.call('SET', keysA.appKey('greeting'), 'hello')).toBe('OK');
    expect(await userA.call('GET', keysA.appKey('greeting'))).toBe('hello');
    expect(await userA.call('HSET', keysA.appKey('profile'), 'name', 'a')).toBe(1);
    expect(await userA.call('PUBLISH', keysA.appKey('events'), 'x')).toBe(0);

    await admin.set(keysB.appKey('secret'), 'b-data');
    await expect(userA.call('GET', keysB.appKey('secret'))).rejects.toThrow(refused);
    await expect(userA.call('SET', keysB.appKey('secret'), 'overwritten')).rejects.toThrow(refused);
    await expect(userA.call('DEL', keysB.appKey('secret'))).rejects.toThrow(refused);
    // A command naming an own key and B's is refused as a whole.
    await expect(userA.call('RENAME', keysA.appKey('greeting'), keysB.appKey('stolen'))).rejects.toThrow(refused);
    await expect(userA.call('MSET', keysA.appKey('m'), '1', keysB.appKey('m'), '1')).rejects.toThrow(refused);
    await expect(userA.call('SUNIONSTORE', keysA.appKey('u'), keysB.appKey('secret'))).rejects.toThrow(refused);
    await expect(userA.call('PUBLISH', keysB.appKey('events'), 'x')).rejects.toThrow(refused);
    await expect(userA.call('GET', 'usage:api')).rejects.toThrow(refused);
    expect(await admin.get(keysB.appKey('secret'))).toBe('b-data');
    expect(await admin.exists(keysB.appKey('stolen'), keysB.appKey('m'))).toBe(0);
  });

  test("SUBSCRIBE: its own channels deliver; B's channels and wider patterns are refused", async () => {
    const keysA = tenantRedis(admin, a);
    const keysB = tenantRedis(admin, b);
    const credentials = await rotateTenantRedisPassword(admin, a);
    const subscriber = await loginAs(credentials);
    const publisher = await loginAs(credentials);
    const received = new Promise<string>((resolve) => subscriber.once('message', (_channel: string, message: string) => resolve(message)));
    await subscriber.subscribe(keysA.appKey('events'));
    expect(await publisher.call('PUBLISH', keysA.appKey('events'), 'ping')).toBe(1);
    expect(await received).toBe('ping');

    const other = await loginAs(credentials);
    await expect(other.subscribe(keysB.appKey('events'))).rejects.toThrow(refused);
    await expect(other.psubscribe('*')).rejects.toThrow(refused);
    await expect(other.psubscribe(`tenant:{${b}}:app:*`)).rejects.toThrow(refused);
    // Patterns are matched literally against the allowed ones: its own whole space is allowed.
    await expect(other.psubscribe(`tenant:{${a}}:app:*`)).resolves.toBe(1);
  });

  test('its own platform keys (quota counters, throttles) are refused', async () => {
    const keysA = tenantRedis(admin, a);
    const quota = keysA.key('quota', '2026-11');
    await admin.hset(quota, 'count', '5');
    await expect(userA.call('HGETALL', quota)).rejects.toThrow(refused);
    await expect(userA.call('HSET', quota, 'count', '0')).rejects.toThrow(refused);
    await expect(userA.call('DEL', quota)).rejects.toThrow(refused);
    await expect(userA.call('SET', keysA.key('rps', '1'), '0')).rejects.toThrow(refused);
    await expect(userA.call('PUBLISH', keysA.key('events'), 'x')).rejects.toThrow(refused);
    expect(await admin.hget(quota, 'count')).toBe('5');
  });

  test('commands Redis does not filter by key pattern, and dangerous ones, are refused', async () => {
    const denied: string[][] = [
      ['SCAN', '0'],
      ['KEYS', '*'],
      ['RANDOMKEY'],
      ['DBSIZE'],
      ['FLUSHALL'],
      ['FLUSHDB'],
      ['CONFIG', 'GET', '*'],
      ['CONFIG', 'SET', 'maxmemory', '1'],
      ['INFO'],
      ['SELECT', '1'],
      ['MOVE', tenantRedis(admin, a).appKey('greeting'), '1'],
      ['SWAPDB', '0', '1'],
      ['PUBSUB', 'CHANNELS'],
      ['PUBSUB', 'NUMSUB', tenantRedis(admin, b).appKey('events')],
      ['CLIENT', 'LIST'],
      ['CLIENT', 'KILL', 'USER', 'default'],
      ['CLIENT', 'TRACKING', 'on', 'BCAST'],
      ['ACL', 'LIST'],
      ['ACL', 'SETUSER', tenantRedisUsername(a), '~*'],
      ['EVAL', "return redis.call('GET', KEYS[1])", '1', tenantRedis(admin, a).appKey('greeting')],
      ['SCRIPT', 'FLUSH'],
      ['FUNCTION', 'LIST'],
      ['SORT', tenantRedis(admin, a).appKey('list'), 'BY', 'nosort', 'GET', '*'],
      ['MONITOR'],
      ['SAVE'],
      ['SHUTDOWN', 'NOSAVE'],
    ];
    for (const command of denied) {
      await expect(userA.call(command[0]!, ...command.slice(1)), command.join(' ')).rejects.toThrow(refused);
    }
    // Redis 7 refuses DEBUG to everyone by default (enable-debug-command), before the ACL
    // check; where an operator enabled it, the ACL refuses it.
    await expect(userA.call('DEBUG', 'SLEEP', '0')).rejects.toThrow(/NOPERM|DEBUG command not allowed/);
    expect(await admin.call('ACL', 'DRYRUN', tenantRedisUsername(a), 'DEBUG', 'SLEEP', '0')).toMatch(/no permissions/);
    expect(await admin.ping()).toBe('PONG');
  });
});

describe("a tenant's Redis user's life: made, rotated, disabled, enabled, removed", () => {
  test('a user made without rotation has no password: nobody logs in as it', async () => {
    const tenant = randomUUID();
    await ensureTenantRedisUser(admin, tenant, { enabled: true });
    const user = (await admin.call('ACL', 'GETUSER', tenantRedisUsername(tenant))) as unknown[];
    const fields = Object.fromEntries(Array.from({ length: user.length / 2 }, (_, index) => [user[index * 2], user[index * 2 + 1]])) as Record<string, unknown>;
    expect(fields.passwords).toEqual([]);
    expect(fields.flags).toEqual(['on']);
    const client = await connect();
    await expect(client.call('AUTH', tenantRedisUsername(tenant), '')).rejects.toThrow(/WRONGPASS/);
    await expect(client.call('AUTH', tenantRedisUsername(tenant), 'nopass')).rejects.toThrow(/WRONGPASS/);
  });

  test('rotate: the old password is refused for new logins, the new one works; ensure keeps it', async () => {
    const tenant = randomUUID();
    const first = await rotateTenantRedisPassword(admin, tenant);
    expect(first.username).toBe(`tenant-${tenant}`);
    const live = await loginAs(first);
    const second = await rotateTenantRedisPassword(admin, tenant);
    expect(second.password).not.toBe(first.password);
    await expect(loginAs(first)).rejects.toThrow(/WRONGPASS/);
    const fresh = await loginAs(second);
    expect(await fresh.call('SET', tenantRedis(admin, tenant).appKey('k'), 'v')).toBe('OK');
    // Rotation does not cut off the apps already connected (suspend does).
    expect(await live.call('GET', tenantRedis(admin, tenant).appKey('k'))).toBe('v');
    await ensureTenantRedisUser(admin, tenant, { enabled: true });
    await expect(loginAs(second)).resolves.toBeInstanceOf(Redis);
  });

  test('disable ends its live connections at once and refuses AUTH; enable lets it in again', async () => {
    const tenant = randomUUID();
    const credentials = await rotateTenantRedisPassword(admin, tenant);
    const live = await loginAs(credentials);
    const subscriber = await loginAs(credentials);
    await subscriber.subscribe(tenantRedis(admin, tenant).appKey('events'));
    expect(await live.call('PING')).toBe('PONG');

    await ensureTenantRedisUser(admin, tenant, { enabled: false });
    await expect(live.call('GET', tenantRedis(admin, tenant).appKey('k'))).rejects.toThrow();
    await expect.poll(() => subscriber.status, { timeout: 2_000 }).toBe('end');
    await expect(loginAs(credentials)).rejects.toThrow(/WRONGPASS/);
    // Disabling again (a suspended tenant's status applied twice) is no error.
    await ensureTenantRedisUser(admin, tenant, { enabled: false });

    await ensureTenantRedisUser(admin, tenant, { enabled: true });
    const back = await loginAs(credentials);
    expect(await back.call('PING')).toBe('PONG');
  });

  test('rotating a disabled user keeps it disabled; rotating a missing one makes it, on', async () => {
    const tenant = randomUUID();
    await ensureTenantRedisUser(admin, tenant, { enabled: false });
    await expect(loginAs(await rotateTenantRedisPassword(admin, tenant))).rejects.toThrow(/WRONGPASS/);
    const missing = randomUUID();
    await expect(loginAs(await rotateTenantRedisPassword(admin, missing))).resolves.toBeInstanceOf(Redis);
  });

  test('remove deletes the user and ends its connections; removing again is no error', async () => {
    const tenant = randomUUID();
    const credentials = await rotateTenantRedisPassword(admin, tenant);
    const live = await loginAs(credentials);
    await removeTenantRedisUser(admin, tenant);
    await expect(live.call('PING')).rejects.toThrow();
    await expect(loginAs(credentials)).rejects.toThrow(/WRONGPASS/);
    expect(await admin.call('ACL', 'GETUSER', tenantRedisUsername(tenant))).toBeNull();
    await removeTenantRedisUser(admin, tenant);
  });

  test('a server whose CONFIG is denied to the caller still gets the user; persisting is skipped', async () => {
    const operator = { username: `operator-${randomUUID()}`, password: randomUUID() };
    await admin.call('ACL', 'SETUSER', operator.username, 'on', `>${operator.password}`, '~*', '&*', '+@all', '-config');
    const client = await loginAs(operator);
    const tenant = randomUUID();
    await ensureTenantRedisUser(client, tenant, { enabled: true });
    expect(await admin.call('ACL', 'GETUSER', tenantRedisUsername(tenant))).not.toBeNull();
    expect(readFileSync(server.aclFile, 'utf8')).not.toContain(tenantRedisUsername(tenant));
    await admin.call('ACL', 'DELUSER', operator.username);
  });
});

describe('the default user and the tenant users across a restart', () => {
  test('the default user needs its password (NOAUTH without, WRONGPASS with another)', async () => {
    const anonymous = await connect();
    await expect(anonymous.call('GET', 'usage:api')).rejects.toThrow(/NOAUTH/);
    await expect(anonymous.call('AUTH', 'default', 'not-the-password')).rejects.toThrow(/WRONGPASS/);
    await expect(anonymous.call('AUTH', 'not-the-password')).rejects.toThrow(/WRONGPASS/);
    expect(server.url).toMatch(/^redis:\/\/default:[^@]+@127\.0\.0\.1:\d+$/);
    expect(readFileSync(server.aclFile, 'utf8')).not.toContain(server.password);
  });

  test('tenant users, their passwords and on/off, and the default password survive a restart', async () => {
    const on = randomUUID();
    const off = randomUUID();
    const removed = randomUUID();
    const onCredentials = await rotateTenantRedisPassword(admin, on);
    const offCredentials = await rotateTenantRedisPassword(admin, off);
    await ensureTenantRedisUser(admin, off, { enabled: false });
    await rotateTenantRedisPassword(admin, removed);
    await removeTenantRedisUser(admin, removed);
    const urlBefore = server.url;

    await stopProcess(server.pid);
    await startServer();
    expect(server.url).toBe(urlBefore);

    const user = await loginAs(onCredentials);
    expect(await user.call('SET', tenantRedis(admin, on).appKey('after-restart'), '1')).toBe('OK');
    await expect(user.call('SCAN', '0')).rejects.toThrow(refused);
    await expect(loginAs(offCredentials)).rejects.toThrow(/WRONGPASS/);
    expect(await admin.call('ACL', 'GETUSER', tenantRedisUsername(removed))).toBeNull();
    const anonymous = await connect();
    await expect(anonymous.call('PING')).rejects.toThrow(/NOAUTH/);
    const platform = new Redis(urlBefore, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    platform.on('error', () => undefined);
    clients.push(platform);
    await platform.connect();
    expect(await platform.ping()).toBe('PONG');
  });
});
