import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import type { ServiceEndpoints } from './environment.js';
import { randomSecret } from './environment.js';

/** Pinned to the same versions the compose file runs. */
export const IMAGES = {
  postgres: 'postgres:15.10-bookworm',
  redis: 'redis:7.4.2-bookworm',
  s3: 'quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z',
  stripe: 'stripe/stripe-mock:v0.203.0',
} as const;

type Wanted = Record<'postgres' | 'redis' | 's3' | 'stripe', boolean>;

/** The testcontainers path: used only where a Docker engine answers. */
export async function startContainers(wanted: Wanted): Promise<{
  endpoints: Partial<Omit<ServiceEndpoints, 'sources'>>;
  stop: () => Promise<void>;
}> {
  const running: StartedTestContainer[] = [];
  const stop = async () => {
    await Promise.allSettled(running.map((container) => container.stop()));
  };
  const start = async (container: GenericContainer) => {
    const started = await container.start();
    running.push(started);
    return started;
  };
  try {
    const password = randomSecret();
    const accessKey = `tenantry${randomSecret(4)}`;
    const secretKey = randomSecret(24);
    const [postgres, redis, s3, stripe] = await Promise.all([
      wanted.postgres
        ? start(
            new GenericContainer(IMAGES.postgres)
              .withEnvironment({ POSTGRES_PASSWORD: password })
              .withExposedPorts(5432)
              .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2)),
          )
        : undefined,
      wanted.redis
        ? start(
            // The default user has a password here too, as in every other Redis the platform runs.
            new GenericContainer(IMAGES.redis)
              .withCommand(['redis-server', '--requirepass', password])
              .withExposedPorts(6379)
              .withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/)),
          )
        : undefined,
      wanted.s3
        ? start(
            new GenericContainer(IMAGES.s3)
              .withCommand(['server', '/data'])
              .withEnvironment({ MINIO_ROOT_USER: accessKey, MINIO_ROOT_PASSWORD: secretKey })
              .withExposedPorts(9000)
              .withWaitStrategy(Wait.forHttp('/minio/health/ready', 9000)),
          )
        : undefined,
      wanted.stripe ? start(new GenericContainer(IMAGES.stripe).withExposedPorts(12111).withWaitStrategy(Wait.forListeningPorts())) : undefined,
    ]);
    const address = (container: StartedTestContainer, port: number) => `${container.getHost()}:${container.getMappedPort(port)}`;
    return {
      endpoints: {
        postgresAdminUrl: postgres && `postgresql://postgres:${password}@${address(postgres, 5432)}/postgres`,
        redisUrl: redis && `redis://default:${password}@${address(redis, 6379)}`,
        s3: s3 && { endpoint: `http://${address(s3, 9000)}`, accessKey, secretKey },
        stripeApiBase: stripe && `http://${address(stripe, 12111)}`,
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
