import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { loadConfigOrExit, postgresUrl } from '../config.js';
import { bootstrapDatabase } from './bootstrap.js';

const stackEnv = path.resolve(import.meta.dirname, '../../../../.stack/env');
if (!process.env.DATABASE_ADMIN_URL && existsSync(stackEnv)) process.loadEnvFile(stackEnv);

const secret = z.string().min(12, 'must be at least 12 characters');
const config = loadConfigOrExit(
  z.object({
    DATABASE_ADMIN_URL: postgresUrl,
    POSTGRES_DB: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case identifier').default('tenantry'),
    TENANTRY_OWNER_DB_PASSWORD: secret,
    HASURA_DB_PASSWORD: secret,
    APP_SERVICE_DB_PASSWORD: secret,
    PLATFORM_ADMIN_DB_PASSWORD: secret,
  }),
);

await bootstrapDatabase({
  adminUrl: config.DATABASE_ADMIN_URL,
  database: config.POSTGRES_DB,
  passwords: {
    tenantry_owner: config.TENANTRY_OWNER_DB_PASSWORD,
    hasura_app: config.HASURA_DB_PASSWORD,
    app_service: config.APP_SERVICE_DB_PASSWORD,
    platform_admin: config.PLATFORM_ADMIN_DB_PASSWORD,
  },
}).catch((error: Error) => {
  console.error(`db:bootstrap: ${error.message}`);
  process.exit(1);
});
console.log(`roles and database "${config.POSTGRES_DB}" are in place`);
