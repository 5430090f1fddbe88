import pg from 'pg';
import { loadConfigOrExit } from '../../shared/src/config.js';
import { createLogger } from '../../shared/src/logger.js';
import { serveUntilSignalled } from '../../shared/src/http/serve.js';
import { buildResolverApp } from './app.js';
import { resolverConfigSchema } from './config.js';

const config = loadConfigOrExit(resolverConfigSchema);
const logger = createLogger('resolver', config.LOG_LEVEL);
const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: 10, application_name: 'tenantry-resolver' });
// An idle client losing its connection must not take the process down; the next query reconnects.
pool.on('error', (error) => logger.warn({ err: error }, 'idle database connection failed'));
const app = buildResolverApp({ pool, secret: config.RESOLVER_SECRET, logger });

serveUntilSignalled(app, { host: config.RESOLVER_HOST, port: config.RESOLVER_PORT, logger, onClose: () => pool.end() });
