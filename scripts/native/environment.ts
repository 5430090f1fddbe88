import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import { INSTALL_HINT, MissingBinaryError } from './binaries.js';
import { startMinio, startPostgres, startRedis, startStripeMock, stopProcess, type NativeProcess } from './services.js';

/** Everything a test run needs to reach, however it was provided. */
export interface ServiceEndpoints {
  /** A superuser URL: the run creates its roles and databases through it. */
  postgresAdminUrl: string;
  redisUrl: string;
  s3: { endpoint: string; accessKey: string; secretKey: string };
  stripeApiBase: string;
  /** Where each came from: env, container or native. */
  sources: Record<'postgres' | 'redis' | 's3' | 'stripe', 'env' | 'container' | 'native'>;
}

export interface RunningEnvironment {
  endpoints: ServiceEndpoints;
  stop(): Promise<void>;
}

async function dockerAnswers(): Promise<boolean> {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the services a test run needs, each from the first source that has it: a URL in
 * the environment (DATABASE_URL, REDIS_URL, S3_ENDPOINT, STRIPE_API_BASE), a container when
 * a Docker engine answers, or a native process on a free loopback port in a temporary
 * directory. stop() ends whatever was started here, and nothing else.
 */
export async function startTestEnvironment(env: NodeJS.ProcessEnv = process.env): Promise<RunningEnvironment> {
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    await Promise.allSettled(stops.reverse().map((stopOne) => stopOne()));
  };
  try {
    const useDocker = !(env.DATABASE_URL && env.REDIS_URL && env.S3_ENDPOINT && env.STRIPE_API_BASE) && (await dockerAnswers());
    if (useDocker) {
      const { startContainers } = await import('./containers.js');
      const containers = await startContainers({
        postgres: !env.DATABASE_URL,
        redis: !env.REDIS_URL,
        s3: !env.S3_ENDPOINT,
        stripe: !env.STRIPE_API_BASE,
      });
      stops.push(containers.stop);
      return { endpoints: mergeWithEnv(env, containers.endpoints, 'container'), stop };
    }

    const root = await mkdtemp(path.join(os.tmpdir(), 'tenantry-test-'));
    // Postgres runs as its own system user when we are root; it must reach its directory.
    await chmod(root, 0o711);
    stops.push(() => rm(root, { recursive: true, force: true }));
    const started: NativeProcess[] = [];
    stops.push(async () => {
      await Promise.all(started.map((child) => stopProcess(child.pid)));
    });
    // A run killed mid-way must not leave servers behind.
    const killAll = () => started.forEach((child) => child.child?.kill('SIGKILL'));
    process.once('exit', killAll);
    stops.push(async () => {
      process.off('exit', killAll);
    });

    const common = (name: string) => ({ dataDir: path.join(root, name), logFile: path.join(root, `${name}.log`), detached: false });
    const track = async <T extends NativeProcess>(starting: Promise<T>): Promise<T> => {
      const instance = await starting;
      started.push(instance);
      return instance;
    };
    const startups = [
      env.DATABASE_URL ? undefined : track(getPort().then((port) => startPostgres({ ...common('postgres'), port }))),
      env.REDIS_URL ? undefined : track(getPort().then((port) => startRedis({ ...common('redis'), port }))),
      env.S3_ENDPOINT
        ? undefined
        : track(Promise.all([getPort(), getPort()]).then(([port, consolePort]) => startMinio({ ...common('minio'), port, consolePort }))),
      env.STRIPE_API_BASE
        ? undefined
        : track(Promise.all([getPort(), getPort()]).then(([port, httpsPort]) => startStripeMock({ ...common('stripe-mock'), port, httpsPort }))),
    ] as const;
    // Wait for every start to settle, so a failure never leaves a sibling starting unseen.
    const failed = (await Promise.allSettled(startups)).find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    const [postgres, redis, s3, stripe] = await Promise.all(startups);
    const endpoints = mergeWithEnv(
      env,
      {
        postgresAdminUrl: postgres?.adminUrl,
        redisUrl: redis?.url,
        s3: s3 && { endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey },
        stripeApiBase: stripe?.apiBase,
      },
      'native',
    );
    return { endpoints, stop };
  } catch (error) {
    await stop();
    if (error instanceof MissingBinaryError) {
      throw new Error(`tests need Postgres, Redis, MinIO and stripe-mock: ${error.message}`);
    }
    throw error;
  }
}

function mergeWithEnv(
  env: NodeJS.ProcessEnv,
  provided: Partial<Omit<ServiceEndpoints, 'sources'>>,
  source: 'container' | 'native',
): ServiceEndpoints {
  const pick = <T>(fromEnv: T | undefined, fromHere: T | undefined, name: string): [T, 'env' | typeof source] => {
    if (fromEnv !== undefined) return [fromEnv, 'env'];
    if (fromHere !== undefined) return [fromHere, source];
    throw new Error(`no ${name} available: ${INSTALL_HINT}`);
  };
  const [postgresAdminUrl, postgresSource] = pick(env.DATABASE_URL, provided.postgresAdminUrl, 'Postgres');
  const [redisUrl, redisSource] = pick(env.REDIS_URL, provided.redisUrl, 'Redis');
  const s3FromEnv = env.S3_ENDPOINT
    ? { endpoint: env.S3_ENDPOINT, accessKey: env.S3_ACCESS_KEY ?? '', secretKey: env.S3_SECRET_KEY ?? '' }
    : undefined;
  const [s3, s3Source] = pick(s3FromEnv, provided.s3, 'S3 server');
  const [stripeApiBase, stripeSource] = pick(env.STRIPE_API_BASE, provided.stripeApiBase, 'stripe-mock');
  return {
    postgresAdminUrl,
    redisUrl,
    s3,
    stripeApiBase,
    sources: { postgres: postgresSource, redis: redisSource, s3: s3Source, stripe: stripeSource },
  };
}

export const randomSecret = (bytes = 18): string => randomBytes(bytes).toString('base64url');
