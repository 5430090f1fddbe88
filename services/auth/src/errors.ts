import { databaseRefusal } from '../../shared/src/errors/database.js';

// The catalog and the constraint map live in services/shared/src/errors: one for every service, the CLI and the edge.
export { ERRORS, fail, type ErrorCode } from '../../shared/src/errors/catalog.js';
export { pgError } from '../../shared/src/errors/database.js';

/** Maps the rules the database enforces (DATABASE_REFUSALS) to the catalog's errors; rethrows anything else. */
export function mapMembershipError(error: unknown): never {
  throw databaseRefusal(error) ?? error;
}
