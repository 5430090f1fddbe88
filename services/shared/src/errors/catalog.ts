import { HttpError } from '../http/errors.js';

/**
 * The one catalog of error codes every Tenantry answer uses, the services' and the edge's:
 * code → [HTTP status, default message]. A code that is not here is a type error in
 * TypeScript, and the edge's Lua reads a file generated from this one
 * (nginx/lua/tenantry/error_catalog.lua, `npm run edge:catalog`; `npm run edge:catalog:check` and a test fail
 * when it is stale). Messages never say whether an email exists.
 */
export const ERRORS = {
  // Requests that cannot be read or do not match their schema.
  bad_request: [400, 'the request could not be read'],
  validation_failed: [422, 'the request is not valid'],
  plan_not_available: [422, 'that plan cannot be bought'],
  invalid_signature: [400, 'the webhook signature is missing, invalid or stale'],
  payload_too_large: [413, 'request body too large'],
  not_found: [404, 'no such route'],
  method_not_allowed: [405, 'this method is not served here'],
  length_required: [411, 'this request needs a Content-Length'],
  precondition_failed: [412, 'a precondition of this request does not hold'],
  range_not_satisfiable: [416, 'the requested range is not satisfiable'],
  // Who is asking.
  unauthenticated: [401, 'a valid access token is required'],
  invalid_token: [401, 'the access token is invalid or expired'],
  token_revoked: [401, 'the token is no longer valid for this tenant'],
  invalid_credentials: [401, 'email or password is wrong'],
  invalid_refresh_token: [401, 'the refresh token is invalid, expired or revoked'],
  refresh_token_reused: [401, 'the refresh token was already used; the session has been revoked'],
  invalid_api_key: [401, 'the API key is invalid, expired or revoked'],
  invalid_link: [400, 'the link is invalid, used or expired'],
  forbidden: [403, 'you may not do this'],
  not_a_member: [403, 'you are not a member of that tenant'],
  api_key_not_allowed: [403, 'API-key tokens cannot manage the tenant'],
  user_disabled: [403, 'the account is disabled'],
  email_mismatch: [403, 'the invitation is for another email address'],
  feature_not_in_plan: [403, "the tenant's plan does not include this feature"],
  custom_domain_not_in_plan: [403, "this domain is not served: the tenant's plan no longer includes custom domains"],
  // Which tenant.
  invalid_tenant_header: [400, 'the tenant header is malformed'],
  tenant_required: [400, 'this request must name a tenant'],
  tenant_inactive: [403, 'the tenant is not active'],
  tenant_suspended: [403, 'this tenant is suspended'],
  tenant_mismatch: [403, 'the tenant of the request does not match the token'],
  // Conflicts with what exists.
  email_in_use: [409, 'an account with this email already exists'],
  already_member: [409, 'the user is already a member'],
  user_limit_reached: [409, 'the tenant has reached the user limit of its plan'],
  last_owner: [409, 'a tenant must keep at least one owner'],
  slug_taken: [409, 'that slug is taken'],
  domain_taken: [409, 'that domain is already taken'],
  invitation_pending: [409, 'a pending invitation for this email exists'],
  invitation_not_pending: [409, 'the invitation was already accepted, revoked or has expired'],
  subscription_exists: [409, 'the tenant already has a subscription: change it in the billing portal (POST /billing/portal)'],
  no_billing_account: [409, 'the tenant has no billing account yet: start with POST /billing/checkout'],
  login_required: [409, 'an account with this email exists: log in and accept with your access token'],
  file_exists: [409, 'a file with this name exists in this bucket: delete it first'],
  upload_in_progress: [409, 'an upload of this name is in progress: complete it, or wait until it expires'],
  storage_limit_exceeded: [409, "the tenant's storage limit leaves no room for this file"],
  upload_already_completed: [409, 'this upload was completed already'],
  upload_refused: [409, 'this upload was refused (its object did not match what was declared): start a new one'],
  upload_not_found_in_storage: [409, 'the object of this upload is not in storage yet: upload it with the presigned POST, then complete'],
  upload_mismatch: [422, 'the uploaded object does not match the declared size or SHA-256: it was removed'],
  upload_expired: [410, 'this upload expired: start a new one'],
  file_too_large: [413, "the file is larger than the plan's single-file limit"],
  // Not there.
  member_not_found: [404, 'no such member'],
  user_not_found: [404, 'no such user'],
  tenant_not_found: [404, 'no such tenant'],
  invitation_not_found: [404, 'no such invitation'],
  api_key_not_found: [404, 'no such API key'],
  file_not_found: [404, 'no such file'],
  upload_not_found: [404, 'no such upload'],
  // Too much, or not now.
  too_many_attempts: [429, 'too many attempts; try again later'],
  rate_limited: [429, 'too many requests for this tenant'],
  quota_exceeded: [429, "the tenant has used this month's API requests"],
  internal: [500, 'internal error'],
  unavailable: [503, 'a dependency is unavailable'],
  upstream_unavailable: [503, 'the service behind this route is unavailable'],
  payment_provider_error: [502, 'the payment provider refused the request; the operators have been told'],
  payment_provider_unavailable: [503, 'the payment provider did not answer; try again'],
  resolver_unavailable: [503, 'the tenant cannot be resolved right now'],
  storage_unavailable: [503, 'the object storage did not answer; try again'],
  sts_not_available: [501, 'the S3 server has no STS configured: scoped S3 credentials cannot be issued'],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrorCode = keyof typeof ERRORS;

/** The error to throw for `code`: the catalog's status, its default message unless a more precise one is given. */
export function fail(code: ErrorCode, message?: string): HttpError {
  const [status, fallback] = ERRORS[code];
  return new HttpError(status, code, message ?? fallback);
}
