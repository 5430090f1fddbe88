import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { Client as S3Client } from 'minio';
import { describe, expect, test } from 'vitest';
import { findBinary, MissingBinaryError } from '../../scripts/native/binaries.js';
import { startTestEnvironment } from '../../scripts/native/environment.js';
import { isAlive } from '../../scripts/native/services.js';
import { services } from '../helpers/database.js';

describe('the services of this test run', () => {
  test('Redis stores and returns a value', async () => {
    const redis = new Redis(services().endpoints.redisUrl);
    try {
      await redis.set('tenant:{harness}:probe', 'ok', 'EX', 30);
      expect(await redis.get('tenant:{harness}:probe')).toBe('ok');
    } finally {
      redis.disconnect();
    }
  });

  test('the S3 server keeps an object in a bucket', async () => {
    const { endpoint, accessKey, secretKey } = services().endpoints.s3;
    const url = new URL(endpoint);
    const s3 = new S3Client({ endPoint: url.hostname, port: Number(url.port), useSSL: url.protocol === 'https:', accessKey, secretKey });
    const bucket = `harness-${Date.now()}`;
    await s3.makeBucket(bucket);
    await s3.putObject(bucket, 'hello.txt', Buffer.from('hello'));
    const chunks: Buffer[] = [];
    for await (const chunk of await s3.getObject(bucket, 'hello.txt')) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('hello');
    await s3.removeObject(bucket, 'hello.txt');
    await s3.removeBucket(bucket);
  });

  test('stripe-mock answers the Stripe API', async () => {
    const response = await fetch(`${services().endpoints.stripeApiBase}/v1/customers`, {
      method: 'POST',
      headers: { Authorization: 'Bearer sk_test_tenantry', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email: 'ops@acme.test' }),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { object: string }).object).toBe('customer');
  });
});

describe('native environment', () => {
  test('stop() ends every process it started and removes its directory', async () => {
    const environment = await startTestEnvironment({ PATH: process.env.PATH, TENANTRY_CACHE_DIR: process.env.TENANTRY_CACHE_DIR });
    const { endpoints } = environment;
    expect(endpoints.sources).toEqual({ postgres: 'native', redis: 'native', s3: 'native', stripe: 'native' });
    const ports = [endpoints.postgresAdminUrl, endpoints.redisUrl, endpoints.s3.endpoint, endpoints.stripeApiBase].map(
      (address) => new URL(address).port,
    );
    expect(new Set(ports).size).toBe(4);
    const pids = (await import('node:child_process'))
      .execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => ports.some((port) => line.includes(port)))
      .map((line) => Number(line.trim().split(/\s+/)[0]));
    expect(pids.length).toBeGreaterThanOrEqual(4);
    const dataDir = /-D (\S+)/.exec(
      (await import('node:child_process')).execFileSync('ps', ['-o', 'args=', '-p', pids.join(',')], { encoding: 'utf8' }),
    )?.[1];
    await environment.stop();
    expect(pids.filter(isAlive)).toEqual([]);
    expect(dataDir && existsSync(dataDir)).toBe(false);
  });

  test('a missing server binary names the install script', () => {
    expect(() => findBinary('no-such-server')).toThrow(MissingBinaryError);
    expect(() => findBinary('no-such-server')).toThrow(/scripts\/install-native-deps\.sh/);
  });
});
