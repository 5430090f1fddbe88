import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { expect, test } from 'vitest';
import { bootstrapHasuraMetadataDatabase, roleUrl } from '../../services/shared/src/db/bootstrap.js';
import { services } from '../helpers/database.js';

test('Hasura gets a metadata database of its own, owned by hasura_app, idempotently', async () => {
  const { endpoints, passwords } = services();
  const name = `hasura_metadata_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: endpoints.postgresAdminUrl });
  await admin.connect();
  try {
    await bootstrapHasuraMetadataDatabase({ adminUrl: endpoints.postgresAdminUrl, database: name });
    await bootstrapHasuraMetadataDatabase({ adminUrl: endpoints.postgresAdminUrl, database: name });
    const { rows } = await admin.query<{ owner: string; public_connect: boolean }>(
      `SELECT pg_get_userbyid(datdba) AS owner, has_database_privilege('public', oid, 'CONNECT') AS public_connect
         FROM pg_database WHERE datname = $1`,
      [name],
    );
    expect(rows).toEqual([{ owner: 'hasura_app', public_connect: false }]);

    // Hasura creates its catalog there; the other roles cannot even connect.
    const hasura = new pg.Client({ connectionString: roleUrl(endpoints.postgresAdminUrl, 'hasura_app', passwords.hasura_app, name) });
    await hasura.connect();
    await hasura.query('CREATE SCHEMA hdb_catalog; CREATE TABLE hdb_catalog.hdb_metadata (id int PRIMARY KEY, metadata json)');
    await hasura.end();
    const service = new pg.Client({ connectionString: roleUrl(endpoints.postgresAdminUrl, 'app_service', passwords.app_service, name) });
    await expect(service.connect()).rejects.toThrow(/permission denied/);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
});
