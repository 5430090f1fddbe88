import { refusingConstraint, type RefusingConstraint } from '../../shared/src/errors/database.js';

/** A failure to report in one sentence on stderr; exitCode 1 unless it is a usage error (2). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A Postgres error as node-postgres reports it. */
export interface PgError extends Error {
  code?: string;
  constraint?: string;
  detail?: string;
}

export function isPgError(error: unknown): error is PgError {
  return error instanceof Error && typeof (error as PgError).code === 'string' && (error as PgError).code!.length === 5;
}

/** What a message may mention about the command that failed. */
export interface ErrorContext {
  tenant?: string;
  slug?: string;
  domain?: string;
  user?: string;
  email?: string;
  key?: string;
  plan?: string;
}

type Explanation = (context: ErrorContext, tenant: string, error: PgError) => string;

/**
 * What to say for each rule the database enforces, keyed by the shared constraint map
 * (services/shared/src/errors/database.ts): a constraint the map does not know is a type error.
 */
const EXPLANATIONS: Partial<Record<RefusingConstraint, Explanation>> = {
  tenants_slug_valid: (context) => `slug '${context.slug ?? ''}' is not allowed (3–63 characters of a-z, 0-9 and -, not a reserved word) — choose another with --slug`,
  tenants_slug_key: (context) => `slug '${context.slug ?? ''}' is already taken — choose another with --slug`,
  tenant_members_user_limit: (_context, tenant, error) => {
    const limit = /limit of (\d+)/.exec(error.message)?.[1];
    return `${tenant} has reached its limit of ${limit ?? 'its'} users — remove a member or move the tenant to a plan with more users`;
  },
  tenant_members_last_owner: (_context, tenant) => `${tenant} must keep at least one owner — make another member an owner first`,
  tenant_members_pkey: (context, tenant) => `user '${context.user ?? ''}' is already a member of ${tenant} — change the role with \`tenantry member update\``,
  tenant_domains_domain_normalised: (context) => `'${context.domain ?? ''}' is not a valid domain name — give a host name such as app.example.com`,
  tenant_domains_tenant_id_domain_key: (context, tenant) => `domain '${context.domain ?? ''}' is already a domain of ${tenant} — see \`tenantry domain list\``,
  tenant_domains_verified_domain_key: (context) =>
    `domain '${context.domain ?? ''}' is already verified by another tenant — the first tenant to verify a domain keeps it; remove it there first`,
  tenant_settings_key_format: (context) => `setting key '${context.key ?? ''}' is invalid — use lower-case dotted names such as branding.primary_color`,
  users_email_key: (context) => `a user with email '${context.email ?? ''}' already exists — see \`tenantry user list\``,
  users_email_format: (context) => `'${context.email ?? ''}' is not an email address — give one such as ops@example.com`,
  plan_feature_custom_domains: (_context, tenant) =>
    `the plan of ${tenant} does not include custom domains — move it to a plan that does (a subscription, or \`tenantry plan set TENANT PLAN --reason …\`), or set "custom_domains": true in its feature_overrides`,
  plan_feature_api_keys: (_context, tenant) =>
    `the plan of ${tenant} does not include API keys — move it to a plan that does (a subscription, or \`tenantry plan set TENANT PLAN --reason …\`), or set "api_keys": true in its feature_overrides`,
  tenants_plan_id_fkey: (context) => `plan '${context.plan ?? ''}' does not exist — see \`tenantry plan list\``,
};

/**
 * Turns a rule the database enforced into a sentence that says what to do. The rules
 * themselves (slug format, uniqueness, user limit, last owner, domains) live in the
 * database only; the CLI never counts or checks them again.
 */
export function explainDatabaseError(error: unknown, context: ErrorContext = {}): Error {
  if (!isPgError(error)) return error as Error;
  const tenant = context.tenant ? `tenant '${context.tenant}'` : 'the tenant';
  const constraint = refusingConstraint(error);
  const explain = constraint ? EXPLANATIONS[constraint] : undefined;
  if (explain) return new CliError(explain(context, tenant, error));
  if (error.code === '28P01' || error.code === '3D000' || error.code === 'ECONNREFUSED') {
    return new CliError(`cannot reach the database (${error.message}) — check PLATFORM_ADMIN_DATABASE_URL`);
  }
  return new CliError(`the database refused the change: ${error.message}${error.constraint ? ` (${error.constraint})` : ''}`);
}
