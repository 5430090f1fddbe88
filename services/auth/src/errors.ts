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

/** Maps the membership rules the database enforces (user limit at insert, last owner at COMMIT). */
export function mapMembershipError(error: unknown): never {
  const { code, constraint } = pgError(error);
  if (code === '23514' && constraint === 'tenant_members_user_limit') throw fail('user_limit_reached');
  if (code === '23514' && constraint === 'tenant_members_last_owner') throw fail('last_owner');
  if (code === '23505' && constraint === 'tenant_members_pkey') throw fail('already_member');
  throw error;
}
