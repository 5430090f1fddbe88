import { createHash, randomBytes } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PasswordHasher } from '../../services/auth/src/passwords.js';
import { expectError, PASSWORD, signUp, startHarness, uniqueEmail, type Harness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ limits: { maxFailuresPerEmail: 3, maxFailuresPerIp: 6, windowSeconds: 60, lockoutSeconds: 30 } });
});
afterAll(() => h.close());

/** Each test its own client address (the app trusts X-Forwarded-For from loopback, as behind the edge). */
const freshIp = () => `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${randomBytes(1)[0]}`;
const login = (email: string, password: string, ip: string) => request(h.app).post('/auth/login').set('X-Forwarded-For', ip).send({ email, password });

describe('login rate limit and lockout', () => {
  test('after 3 failures the email is locked, even for the right password, with Retry-After', async () => {
    const user = await signUp(h.app, 'lock');
    const ip = freshIp();
    for (let i = 0; i < 3; i++) expectError((await login(user.email, 'wrong password!', ip).expect(401)).body, 'invalid_credentials');
    const locked = await login(user.email, PASSWORD, ip).expect(429);
    expectError(locked.body, 'too_many_attempts');
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    // From another address too: the lock is on the email.
    await login(user.email.toUpperCase(), PASSWORD, freshIp()).expect(429);
    // The key names a hash of the email, never the address itself.
    const lock = `auth:{login}:lock:email:${createHash('sha256').update(user.email.toLowerCase()).digest('hex').slice(0, 32)}`;
    expect(await h.redis.ttl(lock)).toBeGreaterThan(0);
    // When the lock lapses, the right password works again.
    await h.redis.del(lock);
    await login(user.email, PASSWORD, ip).expect(200);
  });

  test('an unknown email is counted and locked exactly like a known one', async () => {
    const ip = freshIp();
    const ghost = uniqueEmail('ghost');
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await login(ghost, 'wrong password!', ip));
    expect(answers.map((answer) => answer.status)).toEqual([401, 401, 401, 429]);
  });

  test('an address with too many failures (across emails) is locked', async () => {
    const ip = freshIp();
    for (let i = 0; i < 6; i++) await login(uniqueEmail('spray'), 'wrong password!', ip).expect(401);
    const user = await signUp(h.app, 'ipvictim');
    expectError((await login(user.email, PASSWORD, ip).expect(429)).body, 'too_many_attempts');
    await login(user.email, PASSWORD, freshIp()).expect(200);
  });

  test('a success clears the failure count', async () => {
    const user = await signUp(h.app, 'clear');
    const ip = freshIp();
    await login(user.email, 'wrong password!', ip).expect(401);
    await login(user.email, 'wrong password!', ip).expect(401);
    await login(user.email, PASSWORD, ip).expect(200);
    await login(user.email, 'wrong password!', ip).expect(401);
    await login(user.email, 'wrong password!', ip).expect(401);
    await login(user.email, PASSWORD, ip).expect(200);
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
    const known = await time(() => hasher.verify(hash, 'wrong password!'));
    const unknown = await time(() => hasher.verify(null, 'wrong password!'));
    expect(unknown / known).toBeGreaterThan(0.5);
    expect(unknown / known).toBeLessThan(2);
  });
});
