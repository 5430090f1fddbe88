import { fail, type ErrorCode } from './catalog.js';
import type { HttpError } from '../http/errors.js';

/** A Postgres error's SQLSTATE and constraint, for mapping what the database enforces. */
export function pgError(error: unknown): { code?: string; constraint?: string } {
  if (typeof error !== 'object' || error === null) return {};
  const { code, constraint } = error as { code?: unknown; constraint?: unknown };
  return { code: typeof code === 'string' ? code : undefined, constraint: typeof constraint === 'string' ? constraint : undefined };
}

/**
 * The one map from the rules the database enforces (by constraint name, with the SQLSTATE
 * it raises them with) to the catalog's codes. The services answer the code; the CLI says a
 * sentence per constraint, keyed by this table's names so that it cannot name one that is
 * not here.
 */
export const DATABASE_REFUSALS = {
  // The grant bounds (hasura/migrations/default/1795900310000_member_grant_bounds).
  tenant_members_grant_bounds: ['42501', 'forbidden'],
  tenant_invitations_grant_bounds: ['42501', 'forbidden'],
  // Preconditions app.accept_invitation and app.create_tenant_with_owner check themselves.
  tenant_invitations_token: ['P0002', 'invitation_not_found'],
  tenant_invitations_pending: ['23514', 'invitation_not_pending'],
  tenant_invitations_email: ['42501', 'email_mismatch'],
  tenants_active: ['42501', 'tenant_inactive'],
  users_active: ['42501', 'user_disabled'],
  // The user limit at insert, the last owner at COMMIT.
  tenant_members_user_limit: ['23514', 'user_limit_reached'],
  tenant_members_last_owner: ['23514', 'last_owner'],
  tenant_members_pkey: ['23505', 'already_member'],
  tenant_invitations_one_pending: ['23505', 'invitation_pending'],
  // An API key's role never exceeds its creator's (hasura/migrations/default/1795900320000_api_key_access).
  api_keys_role_within_creator: ['23514', 'forbidden'],
  // Features bind (hasura/migrations/default/1795900500000_billing).
  plan_feature_api_keys: ['42501', 'feature_not_in_plan'],
  plan_feature_custom_domains: ['42501', 'feature_not_in_plan'],
  // Formats and uniqueness of tenants, domains, settings and users.
  tenants_slug_valid: ['23514', 'validation_failed'],
  tenants_slug_key: ['23505', 'slug_taken'],
  tenants_plan_id_fkey: ['23503', 'validation_failed'],
  tenant_domains_domain_normalised: ['23514', 'validation_failed'],
  tenant_domains_tenant_id_domain_key: ['23505', 'domain_taken'],
  tenant_domains_verified_domain_key: ['23505', 'domain_taken'],
  tenant_settings_key_format: ['23514', 'validation_failed'],
  users_email_key: ['23505', 'email_in_use'],
  users_email_format: ['23514', 'validation_failed'],
  // Storage (hasura/migrations/default/1795900700000_storage): the plan's single-file limit and
  // the tenant's storage limit at upload (pending uploads count), and again when a file is recorded.
  file_uploads_file_size_limit: ['23514', 'file_too_large'],
  file_uploads_storage_limit: ['23514', 'storage_limit_exceeded'],
  files_storage_limit: ['23514', 'storage_limit_exceeded'],
  file_uploads_name_pending: ['23505', 'upload_in_progress'],
  files_name_taken: ['23505', 'file_exists'],
} as const satisfies Record<string, readonly [sqlState: string, code: ErrorCode]>;

export type RefusingConstraint = keyof typeof DATABASE_REFUSALS;

/** The constraint behind a database refusal this table knows, matched on name and SQLSTATE; null otherwise. */
export function refusingConstraint(error: unknown): RefusingConstraint | null {
  const { code, constraint } = pgError(error);
  if (constraint === undefined || !Object.hasOwn(DATABASE_REFUSALS, constraint)) return null;
  const known = constraint as RefusingConstraint;
  return DATABASE_REFUSALS[known][0] === code ? known : null;
}

/**
 * Refusals whose database message says more than the catalog's: the rule a grant bound names
 * ("you cannot raise your own role"), the limit in bytes a file or the storage exceeds.
 */
const MESSAGE_FROM_DATABASE = new Set<ErrorCode>(['forbidden', 'file_too_large', 'storage_limit_exceeded']);

/** The catalog error for a refusal the table knows (with the database's message where it says more), null for anything else. */
export function databaseRefusal(error: unknown): HttpError | null {
  const constraint = refusingConstraint(error);
  if (!constraint) return null;
  const code = DATABASE_REFUSALS[constraint][1];
  return fail(code, MESSAGE_FROM_DATABASE.has(code) ? (error as Error).message : undefined);
}
