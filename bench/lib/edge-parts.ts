import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import getPort from 'get-port';
import pg from 'pg';
import { pino } from 'pino';
import { startEchoServer } from '../../scripts/native/echo-upstream.js';
import { buildResolverApp } from '../../services/resolver/src/app.js';

/** What an edge benchmark puts around the edge: the real resolver on the database, and an echo upstream. */
export interface EdgeBenchParts {
  /** host:port of the echo upstream. */
  echoAddress: string;
  /**
   * The edge settings every benchmark edge shares, with `upstream` behind every route: the
   * resolver, long cache TTLs, no per-address limit (wrk's anonymous warm-ups all come from
   * one address). The caller adds the port, workers, cache size and its own settings.
   */
  edgeEnv(upstream: string): Record<string, string>;
}

/** Starts the resolver (as app_service) and the echo upstream; `cleanups` stops them. */
export async function startEdgeBenchParts(appServiceUrl: string, cleanups: Array<() => Promise<unknown>>): Promise<EdgeBenchParts> {
  const resolverPool = new pg.Pool({ connectionString: appServiceUrl, max: 8 });
  resolverPool.on('error', () => undefined);
  cleanups.push(() => resolverPool.end());
  const resolverSecret = 'bench-resolver-secret-0123456789';
  const resolverPort = await getPort();
  const resolver: Server = buildResolverApp({ pool: resolverPool, secret: resolverSecret, logger: pino({ level: 'silent' }) }).listen(
    resolverPort,
    '127.0.0.1',
  );
  cleanups.push(() => new Promise((resolve) => resolver.close(resolve)));

  const echo = await startEchoServer();
  cleanups.push(
    () =>
      new Promise((resolve) => {
        echo.closeAllConnections();
        echo.close(resolve);
      }),
  );
  return {
    echoAddress: `127.0.0.1:${(echo.address() as AddressInfo).port}`,
    edgeEnv: (upstream) => ({
      BASE_DOMAIN: 'bench.test',
      HASURA_UPSTREAM: upstream,
      AUTH_UPSTREAM: upstream,
      BILLING_UPSTREAM: upstream,
      STORAGE_UPSTREAM: upstream,
      RESOLVER_UPSTREAM: `127.0.0.1:${resolverPort}`,
      RESOLVER_SECRET: resolverSecret,
      EDGE_PURGE_SECRET: 'bench-purge-secret-0123456789',
      EDGE_CACHE_TTL_SECONDS: '600',
      EDGE_ANONYMOUS_RATE_LIMIT_RPS: '0',
    }),
  };
}
