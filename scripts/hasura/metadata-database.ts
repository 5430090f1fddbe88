/**
 * Creates Hasura's metadata database (owned by hasura_app) after `npm run db:bootstrap`.
 * The compose file's migrate job runs it; DATABASE_ADMIN_URL is a superuser URL.
 *
 *   DATABASE_ADMIN_URL=… HASURA_METADATA_DB=hasura_metadata npx tsx scripts/hasura/metadata-database.ts
 */
import { z } from 'zod';
import { loadConfigOrExit, postgresUrl } from '../../services/shared/src/config.js';
import { bootstrapHasuraMetadataDatabase } from '../../services/shared/src/db/bootstrap.js';

const config = loadConfigOrExit(
  z.object({
    DATABASE_ADMIN_URL: postgresUrl,
    HASURA_METADATA_DB: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case identifier').default('hasura_metadata'),
  }),
);
await bootstrapHasuraMetadataDatabase({ adminUrl: config.DATABASE_ADMIN_URL, database: config.HASURA_METADATA_DB }).catch((error: Error) => {
  console.error(`hasura metadata database: ${error.message}`);
  process.exit(1);
});
console.log(`Hasura's metadata database "${config.HASURA_METADATA_DB}" is in place (owner hasura_app)`);
