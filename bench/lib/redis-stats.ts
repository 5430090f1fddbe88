import type { Redis } from 'ioredis';

/** Counters of one Redis server, read with a single INFO (one round trip of our own). */
export interface RedisCounters {
  /** Read events the server processed: one per request or pipeline that arrives at once. */
  reads: number;
  commands: number;
  /** Calls per command name (commandstats: scripts' inner commands included). */
  calls: Record<string, number>;
}

export async function readRedisCounters(redis: Redis): Promise<RedisCounters> {
  const info = await redis.call('INFO', 'stats', 'commandstats') as string;
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[match[1]!] = Number(match[2]);
  return { reads: field('total_reads_processed'), commands: field('total_commands_processed'), calls };
}

/** after − before, less the INFO that read `after` (its own read event and command). */
export function redisDelta(before: RedisCounters, after: RedisCounters): RedisCounters {
  const calls: Record<string, number> = {};
  for (const [name, count] of Object.entries(after.calls)) calls[name] = count - (before.calls[name] ?? 0);
  calls.info = (calls.info ?? 0) - 1;
  return { reads: after.reads - before.reads - 1, commands: after.commands - before.commands - 1, calls };
}

export function addRedisCounters(total: RedisCounters, delta: RedisCounters): RedisCounters {
  const calls = { ...total.calls };
  for (const [name, count] of Object.entries(delta.calls)) calls[name] = (calls[name] ?? 0) + count;
  return { reads: total.reads + delta.reads, commands: total.commands + delta.commands, calls };
}

export const NO_REDIS_COUNTS: RedisCounters = { reads: 0, commands: 0, calls: {} };

/** Seconds of CPU (user + system) the Redis server has used, from INFO cpu. */
export async function readRedisCpuSeconds(redis: Redis): Promise<number> {
  const info = (await redis.call('INFO', 'cpu')) as string;
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}
