import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { Redis } from 'ioredis';
import { fail } from './errors.js';

export interface LoginLimits {
  /** Failures from one source address (across emails) within windowSeconds before the address is locked. */
  maxFailuresPerIp: number;
  windowSeconds: number;
  /** How long an address stays locked. */
  lockoutSeconds: number;
  /** The consecutive failure of one (email, address) pair from which it waits. Default 5. */
  delayFromFailure?: number;
  /** The first wait; each further failure doubles it. Default 1 s. */
  firstDelaySeconds?: number;
  /** The longest wait. Default 15 minutes. */
  maxDelaySeconds?: number;
  /**
   * How long a pair's failure count is remembered after its last failure. Longer than the
   * longest wait, so that sitting out a wait does not reset the doubling. Default a day.
   */
  pairMemorySeconds?: number;
}

export const PAIR_THROTTLE_DEFAULTS = { delayFromFailure: 5, firstDelaySeconds: 1, maxDelaySeconds: 900, pairMemorySeconds: 86_400 } as const;

/**
 * The address a limit is kept for. IPv4-mapped IPv6 is its IPv4 address; any other IPv6
 * address counts as its /64, the block one subscriber gets: otherwise one host could take
 * a fresh address per attempt.
 */
export function sourceOf(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!isIPv6(ip)) return ip;
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = ip.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = ip.includes('::') ? [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups] : headGroups;
  return `${groups
    .slice(0, 4)
    .map((group) => group.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

function throttleUnavailable(cause: unknown): Error {
  const error = fail('unavailable', 'the login throttle is unavailable; retry shortly');
  error.cause = cause;
  return error;
}

/**
 * The Redis keys of a login attempt, in the platform's namespace (apart from every
 * tenant's `tenant:{<id>}:…`). They share the `{login}` hash tag so one MULTI works on a
 * cluster. The email is hashed (with the address, for the pair): the key space never
 * lists addresses, and an unknown email is counted exactly like a known one.
 */
export function loginKeys(email: string, ip: string) {
  const source = sourceOf(ip);
  const pair = createHash('sha256').update(`${email.trim().toLowerCase()}\n${source}`).digest('hex').slice(0, 32);
  return {
    pairFailures: `platform:{login}:pair:${pair}:failures`,
    pairDelay: `platform:{login}:pair:${pair}:delay`,
    ipFailures: `platform:{login}:ip:${source}:failures`,
    ipLock: `platform:{login}:ip:${source}:lock`,
  };
}

/**
 * Login throttling, in Redis:
 * - per (email, source address): from the 5th consecutive failure the pair waits, 1 s
 *   doubling up to 15 minutes; a success clears it. There is no lockout per email alone:
 *   failures from an attacker's address never make the owner wait at theirs.
 * - per source address: too many failures across emails within the window lock the
 *   address (credential stuffing, password spraying).
 *
 * It fails CLOSED: when Redis is down or hung (every command times out, see
 * shared/redis.ts) a login answers 503 `unavailable` rather than going unthrottled, so
 * nobody can guess passwords at full speed while Redis is away.
 */
export class LoginLimiter {
  private readonly limits: Required<LoginLimits>;

  constructor(
    private readonly redis: Redis,
    limits: LoginLimits,
  ) {
    this.limits = { ...PAIR_THROTTLE_DEFAULTS, ...limits };
  }

  /** The wait after `failures` consecutive failures of a pair, in milliseconds (0: none). */
  delayAfter(failures: number): number {
    const { delayFromFailure, firstDelaySeconds, maxDelaySeconds } = this.limits;
    if (failures < delayFromFailure) return 0;
    const doublings = Math.min(failures - delayFromFailure, 30);
    return Math.min(firstDelaySeconds * 2 ** doublings, maxDelaySeconds) * 1000;
  }

  /** Seconds until this attempt may be judged, or 0 when it may proceed now. */
  async lockedFor(email: string, ip: string): Promise<number> {
    const keys = loginKeys(email, ip);
    const results = await this.guard(this.redis.multi().pttl(keys.pairDelay).pttl(keys.ipLock).exec());
    const waits = results.map(([, milliseconds]) => Number(milliseconds));
    return Math.ceil(Math.max(0, ...waits) / 1000);
  }

  async recordFailure(email: string, ip: string): Promise<void> {
    const keys = loginKeys(email, ip);
    const { windowSeconds, lockoutSeconds, maxFailuresPerIp, pairMemorySeconds } = this.limits;
    const results = await this.guard(
      this.redis
        .multi()
        .incr(keys.pairFailures)
        .expire(keys.pairFailures, pairMemorySeconds)
        .incr(keys.ipFailures)
        .expire(keys.ipFailures, windowSeconds, 'NX')
        .exec(),
    );
    const pairCount = Number(results[0]?.[1] ?? 0);
    const ipCount = Number(results[2]?.[1] ?? 0);
    const delay = this.delayAfter(pairCount);
    if (delay === 0 && ipCount < maxFailuresPerIp) return;
    const locks = this.redis.multi();
    if (delay > 0) locks.set(keys.pairDelay, '1', 'PX', delay);
    if (ipCount >= maxFailuresPerIp) locks.set(keys.ipLock, '1', 'EX', lockoutSeconds).del(keys.ipFailures);
    await this.guard(locks.exec());
  }

  async recordSuccess(email: string, ip: string): Promise<void> {
    const keys = loginKeys(email, ip);
    await this.guard(this.redis.multi().del(keys.pairFailures, keys.pairDelay).exec());
  }

  /** A MULTI's results, or 503 `unavailable` when Redis did not answer in time or refused. */
  private async guard(pending: Promise<[error: Error | null, result: unknown][] | null>): Promise<[error: Error | null, result: unknown][]> {
    let results: [error: Error | null, result: unknown][] | null;
    try {
      results = await pending;
    } catch (error) {
      throw throttleUnavailable(error);
    }
    const failed = results?.find(([error]) => error);
    if (!results || failed) throw throttleUnavailable(failed?.[0]);
    return results;
  }
}
