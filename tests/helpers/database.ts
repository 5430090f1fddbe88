import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { bootstrapDatabase, LOGIN_ROLES, roleUrl, type LoginRole } from '../../services/shared/src/db/bootstrap.js';
import { migrate } from '../../services/shared/src/db/migrations.js';

export const services = () => inject('services');

/** A pool on the shared test database as one of the project's roles. */
export function poolAs(role: LoginRole, max = 5): pg.Pool {
  return new pg.Pool({ connectionString: services().urls[role], max });
}

export interface ScratchDatabase {
  name: string;
  url(role: LoginRole): string;
  /** Gives back TEMPORARY (which the bootstrap revokes), for attacks that shadow tables with temporary ones. */
  grantTemporary(roles: readonly LoginRole[]): Promise<void>;
  drop(): Promise<void>;
}

/** A database of its own, for tests that change the schema or the migration ledger. */
export async function createScratchDatabase({ migrated }: { migrated: boolean }): Promise<ScratchDatabase> {
  const { endpoints, passwords, migrationsDir } = services();
  const name = `tenantry_scratch_${randomBytes(6).toString('hex')}`;
  await bootstrapDatabase({ adminUrl: endpoints.postgresAdminUrl, database: name, passwords });
  const url = (role: LoginRole) => roleUrl(endpoints.postgresAdminUrl, role, passwords[role], name);
  if (migrated) await migrate({ databaseUrl: url('tenantry_owner'), directory: migrationsDir });
  return {
    name,
    url,
    async grantTemporary(roles) {
      const adminUrl = new URL(endpoints.postgresAdminUrl);
      adminUrl.pathname = `/${name}`;
      const superuser = new pg.Client({ connectionString: adminUrl.toString() });
      await superuser.connect();
      try {
        await superuser.query(`GRANT TEMPORARY ON DATABASE "${name}" TO ${roles.join(', ')}`);
      } finally {
        await superuser.end();
      }
    },
    async drop() {
      const admin = new pg.Client({ connectionString: endpoints.postgresAdminUrl });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

export { LOGIN_ROLES };
