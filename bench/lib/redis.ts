import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import { startRedis, stopProcess } from '../../scripts/native/services.js';

export interface BenchRedis {
  url: string;
  source: 'env' | 'native';
  stop(): Promise<void>;
}

/** REDIS_URL when set, else a throwaway native redis-server in a temporary directory. */
export async function startBenchRedis(env: NodeJS.ProcessEnv = process.env): Promise<BenchRedis> {
  if (env.REDIS_URL) return { url: env.REDIS_URL, source: 'env', stop: async () => undefined };
  const root = await mkdtemp(path.join(os.tmpdir(), 'tenantry-bench-redis-'));
  const instance = await startRedis({ port: await getPort(), dataDir: root, logFile: path.join(root, 'redis.log'), detached: false });
  return {
    url: instance.url,
    source: 'native',
    async stop() {
      await stopProcess(instance.pid);
      await rm(root, { recursive: true, force: true });
    },
  };
}
