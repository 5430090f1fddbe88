/** A service started as its `npm run <service>:start` runs it, for the process tests. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import type { KeyRing } from '../../services/auth/src/keys.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Tries `probe` until it gives a value; otherwise fails naming `what`, with the process's output. */
export async function until<T>(probe: () => Promise<T | undefined>, what: string, output: () => string, attempts = 120): Promise<T> {
  for (let i = 0; i < attempts; i++) {
    const found = await probe().catch(() => undefined);
    if (found !== undefined) return found;
    await sleep(150);
  }
  throw new Error(`${what} never happened; output:\n${output()}`);
}

export interface ServiceProcess {
  child: ChildProcessWithoutNullStreams;
  /** stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Runs a service's main.ts with tsx, collecting its output. */
export function startServiceProcess(entry: string, env: NodeJS.ProcessEnv): ServiceProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return {
    child,
    output: () => output,
    async stop() {
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

/** Runs a service's main.ts to its exit: the exit code and what it wrote to stderr. */
export async function runToExit(entry: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stderr };
}

/** The auth service's JWKS, as a service reads it: the keys `current()` gives at each request. */
export async function serveJwks(port: number, current: () => KeyRing): Promise<Server> {
  const server = createServer((_req, res) => {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(current().jwks()));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return server;
}
