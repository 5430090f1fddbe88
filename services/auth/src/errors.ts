import { databaseRefusal } from '../../shared/src/errors/database.js';

/** Maps the rules the database enforces (DATABASE_REFUSALS) to the catalog's errors; rethrows anything else. */
export function mapMembershipError(error: unknown): never {
  throw databaseRefusal(error) ?? error;
}
