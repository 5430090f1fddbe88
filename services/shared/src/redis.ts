import { Redis } from 'ioredis';
import type { Logger } from './logger.js';

/** How long any one Redis command may take before it fails: Redis answers in well under a millisecond when healthy. */
export const REDIS_COMMAND_TIMEOUT_MS = 500;

/**
 * The services' Redis client. Redis holds counters and caches, never the only copy of
 * anything, so a request must never wait on it for long: when Redis is down or hung,
 * a command fails within REDIS_COMMAND_TIMEOUT_MS and the caller decides (the login
 * throttle fails closed with 503; endpoints that don't need Redis never touch it).
 */
export function createRedisClient(url: string, { logger, name }: { logger: Logger; name: string }): Redis {
  const client = new Redis(url, {
    connectionName: name,
    // Bounds every command, including one that waits in the offline queue while the client
    // (re)connects and one sent to a server that accepted it and never answers (SIGSTOP,
    // a full network buffer, a black hole): ioredis has no timeout by default.
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    // A TCP connect that gets no answer is given up after 1 s and retried, instead of the
    // default 10 s during which every command waits (and times out) on it.
    connectTimeout: 1_000,
    // Commands issued while (re)connecting wait for the connection — so a restart or the first
    // request after start-up does not fail needlessly — but never past commandTimeout.
    enableOfflineQueue: true,
    // When a reconnection attempt fails, queued commands fail at once instead of after the
    // default 20 attempts (which is what made logins wait and then answer 500).
    maxRetriesPerRequest: 1,
    // A command whose connection dropped before it was answered is failed, not sent again
    // after the reconnect: its caller may have timed out and moved on, and resending a
    // non-idempotent INCR would count a login failure twice.
    autoResendUnfulfilledCommands: false,
    // Reconnect quickly and keep trying forever: the service serves again within about a
    // second of Redis coming back.
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
  });
  // Without a listener, a connection error would be an unhandled 'error' event: ioredis
  // emits one on every failed (re)connection attempt, so log them at warn, not error.
  client.on('error', (error: Error) => logger.warn({ err: error, redis: name }, 'redis connection error'));
  return client;
}
