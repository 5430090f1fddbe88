import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { Redis } from 'ioredis';
import { fail } from '../../shared/src/errors/catalog.js';

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
 * tenant's `tenant:{<id>}:…`). They share the `{login}` hash tag so that one script may
 * touch them all on a cluster. The email is hashed (with the address, for the pair): the
 * key space never lists addresses, and an unknown email is counted exactly like a known one.
 */
export function loginKeys(email: string, ip: string) {
  const source = sourceOf(ip);
  // `email` arrives normalised (the request schema's emailSchema), so every spelling of a
  // mailbox (case, Unicode form, IDN or punycode domain) is one pair.
  const pair = createHash('sha256').update(`${email}\n${source}`).digest('hex').slice(0, 32);
  return {
    pairFailures: `platform:{login}:pair:${pair}:failures`,
    pairDelay: `platform:{login}:pair:${pair}:delay`,
    ipFailures: `platform:{login}:ip:${source}:failures`,
    ipLock: `platform:{login}:ip:${source}:lock`,
  };
}

/**
 * One login attempt, atomically (a Lua script runs alone in Redis): refused with the
 * milliseconds left while the pair waits or the address is locked; otherwise counted as
 * a failure BEFORE the password is checked, the pair's wait and the address's lock set
 * when this attempt reaches them. Counting first is what makes a burst of parallel
 * guesses no better than one at a time: the 6th of 30 simultaneous attempts already
 * finds the wait the 5th set. A success takes its count back (recordSuccess).
 * KEYS: pairFailures, pairDelay, ipFailures, ipLock.
 * ARGV: delayFromFailure, firstDelayMs, maxDelayMs, pairMemorySeconds, maxFailuresPerIp, windowSeconds, lockoutSeconds.
 */
const BEGIN_ATTEMPT = `
local wait = math.max(redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[4]), 0)
if wait > 0 then return wait end
local pair = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local ip = redis.call('INCR', KEYS[3])
if ip == 1 then redis.call('EXPIRE', KEYS[3], ARGV[6]) end
local from = tonumber(ARGV[1])
if pair >= from then
  local delay = math.min(tonumber(ARGV[2]) * 2 ^ math.min(pair - from, 30), tonumber(ARGV[3]))
  redis.call('SET', KEYS[2], '1', 'PX', string.format('%d', delay))
end
if ip >= tonumber(ARGV[5]) then
  redis.call('SET', KEYS[4], '1', 'EX', ARGV[7])
  redis.call('DEL', KEYS[3])
end
return 0
`;

/** A success clears its pair and takes back the failure its attempt was counted as. KEYS as above. */
const RECORD_SUCCESS = `
redis.call('DEL', KEYS[1], KEYS[2])
local ip = tonumber(redis.call('GET', KEYS[3]) or '0')
if ip > 0 then redis.call('DECR', KEYS[3]) end
return 0
`;

type ThrottledRedis = Redis & {
  loginBeginAttempt(...keysAndArgs: (string | number)[]): Promise<number>;
  loginRecordSuccess(...keys: string[]): Promise<number>;
};

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
  private readonly redis: ThrottledRedis;

  constructor(redis: Redis, limits: LoginLimits) {
    this.limits = { ...PAIR_THROTTLE_DEFAULTS, ...limits };
    // defineCommand sends EVALSHA, and the script itself only when Redis does not know it yet.
    redis.defineCommand('loginBeginAttempt', { numberOfKeys: 4, lua: BEGIN_ATTEMPT });
    redis.defineCommand('loginRecordSuccess', { numberOfKeys: 4, lua: RECORD_SUCCESS });
    this.redis = redis as ThrottledRedis;
  }

  /**
   * Call before checking the password. Returns the seconds to wait when the attempt is
   * refused (429), or 0 when it may proceed: it is then counted as a failure until
   * recordSuccess takes it back.
   */
  async beginAttempt(email: string, ip: string): Promise<number> {
    const keys = loginKeys(email, ip);
    const { delayFromFailure, firstDelaySeconds, maxDelaySeconds, pairMemorySeconds, maxFailuresPerIp, windowSeconds, lockoutSeconds } = this.limits;
    const waitMs = await this.guard(
      this.redis.loginBeginAttempt(
        keys.pairFailures,
        keys.pairDelay,
        keys.ipFailures,
        keys.ipLock,
        delayFromFailure,
        firstDelaySeconds * 1000,
        maxDelaySeconds * 1000,
        pairMemorySeconds,
        maxFailuresPerIp,
        windowSeconds,
        lockoutSeconds,
      ),
    );
    return Math.ceil(Number(waitMs) / 1000);
  }

  async recordSuccess(email: string, ip: string): Promise<void> {
    const keys = loginKeys(email, ip);
    await this.guard(this.redis.loginRecordSuccess(keys.pairFailures, keys.pairDelay, keys.ipFailures, keys.ipLock));
  }

  /** The answer, or 503 `unavailable` when Redis did not answer in time or refused. */
  private async guard<T>(pending: Promise<T>): Promise<T> {
    try {
      return await pending;
    } catch (error) {
      throw throttleUnavailable(error);
    }
  }
}
