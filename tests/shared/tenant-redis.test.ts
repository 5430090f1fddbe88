import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, expect, test } from 'vitest';
import { tenantRedis } from '../../services/shared/src/tenant-redis.js';
import { tenantAppPrefix, tenantPlatformPrefix, tenantRedisPrefix } from '../../services/shared/src/tenancy.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
// Never connected: building keys needs no server.
const redis = new Redis({ lazyConnect: true });
afterAll(() => redis.disconnect());

test("platform keys and the tenant's app keys are separate sub-namespaces of the tenant's prefix", () => {
  const id = randomUUID();
  const keys = tenantRedis(redis, id);
  expect(keys.prefix).toBe(`tenant:{${id}}:`);
  expect(keys.key('quota', '2026-11')).toBe(`tenant:{${id}}:platform:quota:2026-11`);
  expect(keys.key('rps', 1_764_000_000)).toBe(`tenant:{${id}}:platform:rps:1764000000`);
  expect(keys.appKey('session', 'abc')).toBe(`tenant:{${id}}:app:session:abc`);
  expect(tenantPlatformPrefix(id)).toBe(`tenant:{${id}}:platform:`);
  expect(tenantAppPrefix(id)).toBe(`tenant:{${id}}:app:`);

  // Whatever the parts, a platform key never lands in the app space (where the tenant's ACL
  // user could reach it) and an app key never in the platform's.
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.string({ minLength: 1 }), fc.integer()), { minLength: 1, maxLength: 5 }), (parts) => {
      const platformKey = keys.key(...parts);
      const appKey = keys.appKey(...parts);
      expect(platformKey.startsWith(tenantPlatformPrefix(id))).toBe(true);
      expect(platformKey.startsWith(tenantAppPrefix(id))).toBe(false);
      expect(appKey.startsWith(tenantAppPrefix(id))).toBe(true);
      expect(appKey.startsWith(tenantPlatformPrefix(id))).toBe(false);
      expect(keys.assertOwnKey(platformKey)).toBe(platformKey);
      expect(keys.assertOwnKey(appKey)).toBe(appKey);
    }),
  );
  expect(() => keys.key()).toThrow(TypeError);
  expect(() => keys.appKey('a', '', 'b')).toThrow(TypeError);
});

test("assertOwnKey refuses a key that is not under the tenant's prefix", () => {
  const id = randomUUID();
  const other = randomUUID();
  const keys = tenantRedis(redis, id);
  for (const key of [
    `tenant:{${other}}:app:x`,
    `tenant:{${other}}:platform:quota:2026-11`,
    'usage:api',
    `platform:{login}:ip:1.2.3.4:failures`,
    // Built by hand without the hash tag, or with a look-alike id.
    `tenant:${id}:app:x`,
    `tenant:{${id}x}:app:x`,
    `tenant:{${id.toUpperCase()}}:app:x`,
    `x${tenantRedisPrefix(id)}app:x`,
    tenantRedisPrefix(id),
    '',
  ]) {
    expect(() => keys.assertOwnKey(key), key).toThrow(TypeError);
  }
});

test('a tenant id that is not a lower-case uuid is refused: it would widen or break SCAN patterns and ACL rules', () => {
  const id = randomUUID();
  for (const bad of ['*', `${id}*`, `${id} `, id.toUpperCase(), 'harness', '', `${id.slice(0, -1)}?`, `${id}}:app:*`]) {
    expect(() => tenantRedis(redis, bad), bad).toThrow(TypeError);
    expect(() => tenantRedisPrefix(bad), bad).toThrow(TypeError);
  }
});

function sourceFiles(directory: string, extensions: string[]): string[] {
  return readdirSync(directory).flatMap((name) => {
    const full = path.join(directory, name);
    if (name === 'node_modules' || name === 'dist') return [];
    if (statSync(full).isDirectory()) return sourceFiles(full, extensions);
    return extensions.some((extension) => name.endsWith(extension)) ? [full] : [];
  });
}

test('no service builds a tenant key by hand: tenantRedis (tenancy.ts) is the one place', () => {
  const handMade = sourceFiles(path.join(ROOT, 'services'), ['.ts'])
    .filter((file) => !file.endsWith(path.join('shared', 'src', 'tenancy.ts')))
    .filter((file) => /tenant:\{|tenant:\$\{/.test(readFileSync(file, 'utf8').replace(/^\s*(\/\/|\/\*|\*).*$/gm, '')))
    .map((file) => path.relative(ROOT, file));
  expect(handMade).toEqual([]);
});

test("the edge's per-tenant keys are all the platform's (tenant:{<id>}:platform:…), out of the tenant user's reach", () => {
  const files = sourceFiles(path.join(ROOT, 'nginx/lua'), ['.lua']);
  const built = files.flatMap((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => !line.trim().startsWith('--') && line.includes('"tenant:{"'))
      .map((line) => ({ file: path.relative(ROOT, file), line: line.trim() })),
  );
  expect(built.length).toBeGreaterThanOrEqual(2);
  for (const { file, line } of built) expect(line, file).toMatch(/"tenant:\{" \.\. [a-z_]+ \.\. "\}:platform:/);
});
