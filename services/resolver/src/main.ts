import { loadConfigOrExit } from '../../shared/src/config.js';
import { createServicePool } from '../../shared/src/db/pool.js';
import { createLogger } from '../../shared/src/logger.js';
import { serveUntilSignalled } from '../../shared/src/http/serve.js';
import { buildResolverApp } from './app.js';
import { resolverConfigSchema } from './config.js';

const config = loadConfigOrExit(resolverConfigSchema);
const logger = createLogger('resolver', config.LOG_LEVEL);
// Survives the database going away: every client's errors are handled, checkouts time out,
// lookups answer 503 (the edge then serves its stale cache) until it is back.
const pool = createServicePool({ connectionString: config.DATABASE_URL, applicationName: 'tenantry-resolver', logger });
const app = buildResolverApp({ pool, secret: config.RESOLVER_SECRET, logger });

serveUntilSignalled(app, { host: config.RESOLVER_HOST, port: config.RESOLVER_PORT, logger, onClose: () => pool.end() });
