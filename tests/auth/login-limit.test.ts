import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PasswordHasher } from '../../services/shared/src/passwords.js';
import { LoginLimiter, loginKeys, sourceOf } from '../../services/auth/src/rate-limit.js';
import { expectError, PASSWORD, signUp, startHarness, uniqueEmail, type Harness } from './harness.js';

const PER_ADDRESS = 30;

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ limits: { maxFailuresPerIp: PER_ADDRESS, windowSeconds: 60, lockoutSeconds: 30 } });
});
afterAll(() => h.close());

/** Each test its own client addresses (the app trusts X-Forwarded-For from loopback, as behind the edge). */
const freshIp = () => `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${randomBytes(1)[0]}`;
const login = (email: string, password: string, ip: string) => request(h.app).post('/auth/login').set('X-Forwarded-For', ip).send({ email, password });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const WRONG = 'wrong password!';

describe('login throttle per (email, source address)', () => {
  test('ATTACK: 20 wrong passwords from one address do not lock the owner out from another', async () => {
    const owner = await signUp(h.app, 'victim');
    const attacker = freshIp();
    const answers = [];
    for (let i = 0; i < 20; i++) answers.push((await login(owner.email, WRONG, attacker)).status);
    // The owner, from home, at once: the attacker's failures are not the owner's.
    const started = Date.now();
    await login(owner.email, PASSWORD, freshIp()).expect(200);
    // Even after a typo of their own.
    const home = freshIp();
    await login(owner.email, WRONG, home).expect(401);
    await login(owner.email.toUpperCase(), PASSWORD, home).expect(200);
    // The attacker's first five are judged; from then on the attacker's pair waits.
    expect(answers.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(answers.slice(5).every((status) => status === 429)).toBe(true);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  test('from the 5th consecutive failure the pair waits 1 s, then 2 s, then 4 s; the right password waits too', async () => {
    const user = await signUp(h.app, 'delay');
    const ip = freshIp();
    for (let i = 0; i < 5; i++) expectError((await login(user.email, WRONG, ip).expect(401)).body, 'invalid_credentials');

    const first = await login(user.email, PASSWORD, ip).expect(429);
    expectError(first.body, 'too_many_attempts');
    expect(first.headers['retry-after']).toBe('1');
    const keys = loginKeys(user.email, ip);
    const firstDelay = await h.redis.pttl(keys.pairDelay);
    expect(firstDelay).toBeGreaterThan(0);
    expect(firstDelay).toBeLessThanOrEqual(1_000);

    await sleep(1_100);
    await login(user.email, WRONG, ip).expect(401);
    const second = await login(user.email, PASSWORD, ip).expect(429);
    expect(second.headers['retry-after']).toBe('2');
    expect(await h.redis.pttl(keys.pairDelay)).toBeGreaterThan(1_000);
    await sleep(1_100);
    await login(user.email, PASSWORD, ip).expect(429);
    await sleep(1_000);
    await login(user.email, WRONG, ip).expect(401);
    expect((await login(user.email, WRONG, ip).expect(429)).headers['retry-after']).toBe('4');

    // Another address for the same email, and another email from the same address, are not delayed.
    await login(user.email, PASSWORD, freshIp()).expect(200);
    const neighbour = await signUp(h.app, 'neighbour');
    await login(neighbour.email, PASSWORD, ip).expect(200);
  });

  test('ATTACK: a burst of parallel guesses gets no more judged attempts than one at a time', async () => {
    const user = await signUp(h.app, 'burst');
    const ip = freshIp();
    const answers = await Promise.all(Array.from({ length: 30 }, () => login(user.email, WRONG, ip)));
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses.filter((status) => status === 401)).toHaveLength(5);
    expect(statuses.filter((status) => status === 429)).toHaveLength(25);
  });

  test('ATTACK: hopping between addresses of one IPv6 /64 is one source address', async () => {
    const user = await signUp(h.app, 'ipv6');
    const prefix = `2001:db8:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}`;
    const hop = () => `${prefix}:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}:1`;
    for (let i = 0; i < 5; i++) await login(user.email, WRONG, hop()).expect(401);
    await login(user.email, WRONG, hop()).expect(429);
    expect(sourceOf('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(sourceOf('2001:db8::1')).toBe('2001:db8:0:0::/64');
    // The owner from another network is not affected.
    await login(user.email, PASSWORD, `2001:db8:ffff:${randomBytes(2).toString('hex')}::1`).expect(200);
  });

  test('ATTACK: spelling the email differently (case, Unicode form, IDN) is the same pair', async () => {
    const ip = freshIp();
    const local = `wanda-${randomBytes(3).toString('hex')}`;
    const spellings = [`${local}@bücher.test`, `${local.toUpperCase()}@BÜCHER.test`, `${local}@bu\u0308cher.test`, `${local}@xn--bcher-kva.test`, ` ${local}@Bücher.Test `];
    for (const spelling of spellings) await login(spelling, WRONG, ip).expect(401);
    for (const spelling of spellings) await login(spelling, WRONG, ip).expect(429);
  });

  test('the delay doubles up to 15 minutes and no further', async () => {
    const limiter = new LoginLimiter(h.redis, { maxFailuresPerIp: 1_000, windowSeconds: 60, lockoutSeconds: 30 });
    const email = uniqueEmail('cap');
    const ip = freshIp();
    const keys = loginKeys(email, ip);
    await h.redis.set(keys.pairFailures, '40', 'EX', 600);
    expect(await limiter.beginAttempt(email, ip)).toBe(0);
    const delay = await h.redis.pttl(keys.pairDelay);
    expect(delay).toBeGreaterThan(899_000);
    expect(delay).toBeLessThanOrEqual(900_000);
    expect(await limiter.beginAttempt(email, ip)).toBe(900);
  });

  test('a success clears the pair: four failures, success, four failures never wait', async () => {
    const user = await signUp(h.app, 'clear');
    const ip = freshIp();
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 4; i++) await login(user.email, WRONG, ip).expect(401);
      await login(user.email, PASSWORD, ip).expect(200);
    }
    const keys = loginKeys(user.email, ip);
    expect(await h.redis.exists(keys.pairFailures, keys.pairDelay)).toBe(0);
  });

  test('an unknown email is counted and delayed exactly like a known one', async () => {
    const ip = freshIp();
    const ghost = uniqueEmail('ghost');
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push((await login(ghost, WRONG, ip)).status);
    expect(answers).toEqual([401, 401, 401, 401, 401, 429]);
  });

  test('the per-address limit still holds: a spray across emails locks the address, not the emails', async () => {
    const ip = freshIp();
    for (let i = 0; i < PER_ADDRESS; i++) await login(uniqueEmail('spray'), WRONG, ip).expect(401);
    const user = await signUp(h.app, 'ipvictim');
    const locked = await login(user.email, PASSWORD, ip).expect(429);
    expectError(locked.body, 'too_many_attempts');
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    await login(user.email, PASSWORD, freshIp()).expect(200);
  });

  test('successful logins never count toward the per-address limit (many users behind one NAT)', async () => {
    const user = await signUp(h.app, 'office');
    const ip = freshIp();
    for (let i = 0; i < PER_ADDRESS + 5; i++) await login(user.email, PASSWORD, ip).expect(200);
    await login(user.email, WRONG, ip).expect(401);
  });

  test('keys live under the platform namespace and never name the email', async () => {
    const email = uniqueEmail('keys');
    const ip = freshIp();
    await login(email, WRONG, ip).expect(401);
    const keys = Object.values(loginKeys(email, ip));
    for (const key of keys) {
      expect(key.startsWith('platform:{login}:')).toBe(true);
      expect(key.toLowerCase()).not.toContain(email.toLowerCase());
    }
    expect(await h.redis.exists(loginKeys(email, ip).pairFailures)).toBe(1);
  });

  test('with the production argon2 parameters, an unknown email costs as much as a wrong password', async () => {
    const hasher = new PasswordHasher({ memoryCost: 19456, timeCost: 2, parallelism: 1 });
    const hash = await hasher.hash(PASSWORD);
    await hasher.verify(null, 'warm up the dummy hash');
    const time = async (work: () => Promise<unknown>) => {
      const started = performance.now();
      for (let i = 0; i < 3; i++) await work();
      return performance.now() - started;
    };
    const known = await time(() => hasher.verify(hash, WRONG));
    const unknown = await time(() => hasher.verify(null, WRONG));
    expect(unknown / known).toBeGreaterThan(0.5);
    expect(unknown / known).toBeLessThan(2);
  });
});
