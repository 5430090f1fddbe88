import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface LoginLimits {
  maxFailuresPerEmail: number;
  maxFailuresPerIp: number;
  windowSeconds: number;
  lockoutSeconds: number;
}

/**
 * Failed logins counted per email and per IP in Redis; past the limit, a lockout for
 * that email (or IP). Keys share the `{login}` hash tag so one MULTI works on a cluster.
 * The email is hashed: the key space never lists addresses, and an unknown email is
 * counted and locked exactly like a known one, so the limiter reveals nothing either.
 */
export class LoginLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly limits: LoginLimits,
  ) {}

  private keys(email: string, ip: string) {
    const who = createHash('sha256').update(email.trim().toLowerCase()).digest('hex').slice(0, 32);
    return {
      emailFailures: `auth:{login}:fail:email:${who}`,
      ipFailures: `auth:{login}:fail:ip:${ip}`,
      emailLock: `auth:{login}:lock:email:${who}`,
      ipLock: `auth:{login}:lock:ip:${ip}`,
    };
  }

  /** Seconds until the lockout ends, or 0 when the attempt may proceed. */
  async lockedFor(email: string, ip: string): Promise<number> {
    const keys = this.keys(email, ip);
    const [emailTtl, ipTtl] = await Promise.all([this.redis.pttl(keys.emailLock), this.redis.pttl(keys.ipLock)]);
    return Math.ceil(Math.max(emailTtl, ipTtl, 0) / 1000);
  }

  async recordFailure(email: string, ip: string): Promise<void> {
    const keys = this.keys(email, ip);
    const { windowSeconds, lockoutSeconds, maxFailuresPerEmail, maxFailuresPerIp } = this.limits;
    const results = await this.redis
      .multi()
      .incr(keys.emailFailures)
      .expire(keys.emailFailures, windowSeconds, 'NX')
      .incr(keys.ipFailures)
      .expire(keys.ipFailures, windowSeconds, 'NX')
      .exec();
    const emailCount = Number(results?.[0]?.[1] ?? 0);
    const ipCount = Number(results?.[2]?.[1] ?? 0);
    const locks = this.redis.multi();
    if (emailCount >= maxFailuresPerEmail) locks.set(keys.emailLock, '1', 'EX', lockoutSeconds).del(keys.emailFailures);
    if (ipCount >= maxFailuresPerIp) locks.set(keys.ipLock, '1', 'EX', lockoutSeconds).del(keys.ipFailures);
    await locks.exec();
  }

  async recordSuccess(email: string, ip: string): Promise<void> {
    await this.redis.del(this.keys(email, ip).emailFailures);
  }
}
