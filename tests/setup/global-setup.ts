import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { bootstrapDatabase, LOGIN_ROLES, roleUrl, type LoginRole } from '../../services/shared/src/db/bootstrap.js';
import { migrate } from '../../services/shared/src/db/migrations.js';
import { randomSecret, startTestEnvironment, type ServiceEndpoints } from '../../scripts/native/environment.js';

export interface TestServices {
  endpoints: ServiceEndpoints;
  /** The migrated database every test shares; tests keep apart by using their own tenants. */
  database: string;
  passwords: Record<LoginRole, string>;
  urls: Record<LoginRole, string>;
  migrationsDir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    services: TestServices;
  }
}

export const MIGRATIONS_DIR = path.resolve(import.meta.dirname, '../../hasura/migrations/default');

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const environment = await startTestEnvironment();
  try {
    const { endpoints } = environment;
    console.log(
      `test services: ${Object.entries(endpoints.sources)
        .map(([name, source]) => `${name} (${source})`)
        .join(', ')}`,
    );
    const passwords = Object.fromEntries(LOGIN_ROLES.map((role) => [role, randomSecret()])) as Record<LoginRole, string>;
    const database = `tenantry_test_${randomSecret(6).toLowerCase().replace(/[^a-z0-9]/g, '')}`;
    await bootstrapDatabase({ adminUrl: endpoints.postgresAdminUrl, database, passwords });
    const urls = Object.fromEntries(
      LOGIN_ROLES.map((role) => [role, roleUrl(endpoints.postgresAdminUrl, role, passwords[role], database)]),
    ) as Record<LoginRole, string>;
    await migrate({ databaseUrl: urls.tenantry_owner, directory: MIGRATIONS_DIR });
    project.provide('services', { endpoints, database, passwords, urls, migrationsDir: MIGRATIONS_DIR });
  } catch (error) {
    await environment.stop();
    throw error;
  }
  return environment.stop;
}
