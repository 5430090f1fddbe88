/**
 * npm run hasura:lint — the metadata lint against a migrated database (the owner's
 * DATABASE_URL, or the native stack's .stack/env), as the tests run it.
 */
import pg from 'pg';
import { z } from 'zod';
import { loadConfigOrExit, loadStackEnv, postgresUrl } from '../../services/shared/src/config.js';
import { lintMetadata } from './metadata-lint.js';

loadStackEnv(['DATABASE_URL']);
const config = loadConfigOrExit(z.object({ DATABASE_URL: postgresUrl }));

const client = new pg.Client({ connectionString: config.DATABASE_URL, application_name: 'tenantry-hasura-lint' });
await client.connect().catch((error: Error) => {
  console.error(`hasura:lint: cannot connect to DATABASE_URL: ${error.message}`);
  process.exit(1);
});
try {
  const problems = await lintMetadata(client);
  for (const problem of problems) console.error(`${problem.rule}: ${problem.message}`);
  console.log(problems.length === 0 ? 'hasura/metadata passes the lint' : `${problems.length} problem(s)`);
  process.exitCode = problems.length === 0 ? 0 : 1;
} finally {
  await client.end();
}
