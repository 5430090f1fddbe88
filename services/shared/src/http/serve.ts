import { createServer, type Server } from 'node:http';
import type { Express } from 'express';
import type { Logger } from '../logger.js';

export interface ServeOptions {
  host: string;
  port: number;
  logger: Logger;
  /** Closes pools and clients once no request is in flight. */
  onClose: () => Promise<void>;
  drainMs?: number;
}

/**
 * The most header bytes a service reads (Node's default is 16 KiB). Above nginx's own limit
 * (large_client_header_buffers 4 16k: about 64 KiB), so that the edge is always the one that
 * refuses oversized headers, in the shared error shape, and never passes on a service's bare 431.
 */
export const SERVICE_MAX_HEADER_BYTES = 80 * 1024;

/** The HTTP server every service listens with: Express's app.listen, with the header limit above. */
export function createServiceServer(app: Express): Server {
  return createServer({ maxHeaderSize: SERVICE_MAX_HEADER_BYTES }, app);
}

/**
 * Listens, and on SIGTERM/SIGINT stops accepting, lets requests in flight finish (up to
 * drainMs), then closes the dependencies. A second signal exits at once.
 */
export function serveUntilSignalled(app: Express, { host, port, logger, onClose, drainMs = 10_000 }: ServeOptions): Server {
  const server = createServiceServer(app).listen(port, host, () => logger.info({ host, port }, 'listening'));
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => server.closeAllConnections(), drainMs).unref();
    server.close(() => {
      clearTimeout(force);
      onClose()
        .catch((error: unknown) => logger.error({ err: error }, 'error while closing'))
        .finally(() => process.exit(0));
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return server;
}
