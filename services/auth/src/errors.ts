import { HttpError } from '../../shared/src/http/errors.js';

/**
 * The closed catalog of the auth service's errors: a code that is not here is a type
 * error. Messages never say whether an email exists.
 */
export const ERRORS = {
  bad_request: [400, 'the request could not be read'],
  validation_failed: [422, 'the request is not valid'],
  unauthenticated: [401, 'a valid access token is required'],
  invalid_credentials: [401, 'email or password is wrong'],
  invalid_refresh_token: [401, 'the refresh token is invalid, expired or revoked'],
  refresh_token_reused: [401, 'the refresh token was already used; the session has been revoked'],
  invalid_api_key: [401, 'the API key is invalid, expired or revoked'],
  invalid_token: [400, 'the link is invalid, used or expired'],
  forbidden: [403, 'you may not do this'],
  not_a_member: [403, 'you are not a member of that tenant'],
  tenant_inactive: [403, 'the tenant is not active'],
  tenant_mismatch: [403, 'the tenant of the request does not match the token'],
  api_key_not_allowed: [403, 'API-key tokens cannot manage the tenant'],
  user_disabled: [403, 'the account is disabled'],
  email_in_use: [409, 'an account with this email already exists'],
  already_member: [409, 'the user is already a member'],
  user_limit_reached: [409, 'the tenant has reached the user limit of its plan'],
  last_owner: [409, 'a tenant must keep at least one owner'],
  slug_taken: [409, 'that slug is taken'],
  invitation_pending: [409, 'a pending invitation for this email exists'],
  invitation_not_pending: [409, 'the invitation was already accepted, revoked or has expired'],
  email_mismatch: [403, 'the invitation is for another email address'],
  login_required: [409, 'an account with this email exists: log in and accept with your access token'],
  member_not_found: [404, 'no such member'],
  user_not_found: [404, 'no such user'],
  tenant_not_found: [404, 'no such tenant'],
  invitation_not_found: [404, 'no such invitation'],
  api_key_not_found: [404, 'no such API key'],
  too_many_attempts: [429, 'too many attempts; try again later'],
  unavailable: [503, 'a dependency is unavailable'],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrorCode = keyof typeof ERRORS;

export function fail(code: ErrorCode, message?: string): HttpError {
  const [status, fallback] = ERRORS[code];
  return new HttpError(status, code, message ?? fallback);
}

/** A Postgres error's SQLSTATE and constraint, for mapping what the database enforces. */
export function pgError(error: unknown): { code?: string; constraint?: string } {
  if (typeof error !== 'object' || error === null) return {};
  const { code, constraint } = error as { code?: unknown; constraint?: unknown };
  return { code: typeof code === 'string' ? code : undefined, constraint: typeof constraint === 'string' ? constraint : undefined };
}

/** The database's refusals of a membership or invitation write: constraint → [SQLSTATE, code]. */
const MEMBERSHIP_REFUSALS = new Map<string, readonly [sqlState: string, code: ErrorCode]>(Object.entries({
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
} satisfies Record<string, readonly [string, ErrorCode]>));

/**
 * Maps the membership rules the database enforces. A grant-bounds refusal keeps the
 * database's message, which names the rule ("you cannot raise your own role").
 */
export function mapMembershipError(error: unknown): never {
  const { code, constraint } = pgError(error);
  const refusal = constraint === undefined ? undefined : MEMBERSHIP_REFUSALS.get(constraint);
  if (refusal && refusal[0] === code) throw fail(refusal[1], refusal[1] === 'forbidden' ? (error as Error).message : undefined);
  throw error;
}
