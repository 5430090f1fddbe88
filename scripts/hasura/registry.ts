/**
 * The one registry the Hasura metadata is generated from (scripts/hasura/generate-metadata.ts)
 * and the metadata lint (scripts/hasura/metadata-lint.ts) checks against the database.
 *
 * Roles. The tenant roles owner / admin / member / guest (services/shared/src/roles.ts, with HASURA_ROLE and the other role lists)
 * are Hasura roles, except that Hasura reserves the name `admin`: it is the built-in role
 * with unrestricted access (a JWT whose role is `admin` bypasses every permission, and
 * metadata may not define permissions for it). The tenant admin is therefore the Hasura role
 * `tenant_admin`; HASURA_ROLE maps one to the other. `anonymous` is the unauthorized role.
 *
 * Read-only roles. Every tenant role has a read-only twin, `<hasura role>_readonly`, carried
 * by read-only API keys and staff impersonation tokens. They are not written here: the
 * generator gives each exactly its base role's select permission on every table and no
 * insert, update or delete, and the metadata lint fails on anything else.
 *
 * Tenant filter. On every tenant table, every role's select / update / delete filter and
 * insert check contain `<tenant column> = X-Hasura-Tenant-Id` (as a top-level conjunct), and
 * inserts preset the tenant column from the session. The generator adds these; entries here
 * only add extra conditions, so a table can never be written without them.
 */
import { ROLES, type BaseHasuraRole } from '../../services/shared/src/roles.js';

/** The roles a registry entry names: the base roles and anonymous (read-only twins are generated). */
export type RegistryRole = BaseHasuraRole | 'anonymous';
/** The session variable every tenant filter compares with; a claim of the token (JWT mode). */
export const TENANT_SESSION_VARIABLE = 'X-Hasura-Tenant-Id';
export const USER_SESSION_VARIABLE = 'X-Hasura-User-Id';

export type BoolExp = Record<string, unknown>;

export interface SelectRule {
  columns: readonly string[];
  /** Scalar computed fields of the table the role may select. */
  computedFields?: readonly string[];
  /** Extra conditions, AND-ed with the tenant filter on tenant tables. */
  filter?: BoolExp;
  limit?: number;
  allowAggregations?: boolean;
}
export interface InsertRule {
  columns: readonly string[];
  /** Extra conditions, AND-ed with the tenant check. */
  check?: BoolExp;
  /** Extra presets besides the tenant column. */
  set?: Record<string, string>;
}
export interface UpdateRule {
  columns: readonly string[];
  filter?: BoolExp;
  check?: BoolExp;
  set?: Record<string, string>;
}
export interface DeleteRule {
  filter?: BoolExp;
}

export interface ObjectRelationship {
  name: string;
  /** A foreign key column on this table, or a mapping to a remote table whose foreign key points here. */
  using: { column: string } | { remoteTable: string; columnMapping: Record<string, string> };
}
export interface ArrayRelationship {
  name: string;
  /** The remote table and its foreign key column that points at this table. */
  remoteTable: string;
  remoteColumn: string;
}

/** A scalar computed field: a STABLE function taking the table's row. */
export interface ComputedField {
  name: string;
  function: { schema: string; name: string };
}

export interface TrackedTable {
  table: string;
  /** The GraphQL name of the table (root fields projects, projects_by_pk, …). */
  graphqlName: string;
  /** The tenant column, for tables that hold tenant rows; undefined for global tables. */
  tenantColumn?: 'tenant_id' | 'id';
  objectRelationships?: readonly ObjectRelationship[];
  arrayRelationships?: readonly ArrayRelationship[];
  computedFields?: readonly ComputedField[];
  select?: Partial<Record<RegistryRole, SelectRule>>;
  insert?: Partial<Record<RegistryRole, InsertRule>>;
  update?: Partial<Record<RegistryRole, UpdateRule>>;
  delete?: Partial<Record<RegistryRole, DeleteRule>>;
}

/**
 * The plan features the product binds (plans.features keys). Each has a computed field on
 * tenants, `has_feature_<feature>`, backed by app.tenant_has_feature_<feature>(tenants)
 * (migration 1795900500000_billing): the one answer of app.tenant_has_feature in a form a
 * permission can test, on reads too, where no hasura.user exists. The metadata lint fails
 * when a key of plans.features has no computed field here, or a function is missing.
 */
export const PLAN_FEATURES = ['api_keys', 'custom_domains', 'sso', 'audit_export'] as const;
export type PlanFeature = (typeof PLAN_FEATURES)[number];
export const featureComputedField = (feature: string): string => `has_feature_${feature}`;
export const featureFunction = (feature: string) => ({ schema: 'app', name: `tenant_has_feature_${feature}` });
const FEATURE_COMPUTED_FIELDS: readonly ComputedField[] = PLAN_FEATURES.map((feature) => ({
  name: featureComputedField(feature),
  function: featureFunction(feature),
}));
const featureFieldNames = FEATURE_COMPUTED_FIELDS.map((field) => field.name);
/** A permission condition on a row with a `tenant` relationship: the tenant's plan has the feature. */
const tenantHasFeature = (feature: PlanFeature): BoolExp => ({ tenant: { [featureComputedField(feature)]: { _eq: true } } });

const tenantRelationship: ObjectRelationship = { name: 'tenant', using: { column: 'tenant_id' } };
const tenantFor = <T>(roles: readonly RegistryRole[], rule: T): Partial<Record<RegistryRole, T>> =>
  Object.fromEntries(roles.map((role) => [role, rule]));
const MANAGERS = ['owner', 'tenant_admin'] as const;
const WRITERS = ['owner', 'tenant_admin', 'member'] as const;
const READERS = [...WRITERS, 'guest'] as const;
/** Roles a tenant admin may hand out or touch: never owner ("only owners touch owners"). */
const BELOW_OWNER = { role: { _in: ROLES.filter((role) => role !== 'owner') } };

const projectColumns = ['id', 'tenant_id', 'name', 'description', 'status', 'created_by', 'created_at', 'updated_at'] as const;
const projectWrites = ['name', 'description', 'status'] as const;
const memberColumns = ['tenant_id', 'user_id', 'role', 'joined_at'] as const;
const memberManagerColumns = [...memberColumns, 'permissions', 'invited_by', 'created_at', 'updated_at', 'tokens_valid_after'] as const;
const planPublicColumns = [
  'id', 'name', 'description', 'max_users', 'max_storage_bytes', 'max_file_bytes', 'max_api_requests_month', 'rate_limit_rps', 'features', 'sort_order',
] as const;
const fileColumns = ['id', 'tenant_id', 'bucket', 'name', 'size', 'content_type', 'sha256', 'uploaded_by', 'created_at'] as const;
const fileUploadColumns = [
  'id', 'tenant_id', 'bucket', 'name', 'size', 'content_type', 'sha256', 'created_by', 'created_at', 'expires_at', 'status', 'completed_at', 'file_id',
] as const;
const planPriceColumns = ['monthly_price_cents', 'currency'] as const;
const subscriptionAdminColumns = [
  'id', 'tenant_id', 'plan_id', 'status', 'current_period_start', 'current_period_end', 'cancel_at_period_end', 'canceled_at', 'trial_end', 'past_due_since',
  'created_at', 'updated_at',
] as const;
const tenantManagerColumns = [
  'id', 'slug', 'name', 'status', 'status_changed_at', 'suspended_at', 'suspension_reason', 'plan_id', 'owner_user_id',
  'max_users', 'max_storage_bytes', 'max_api_requests_month', 'feature_overrides', 'settings', 'created_at', 'updated_at',
] as const;
/** Public plans, or the plan the caller's tenant is on (enterprise plans are not public). */
const ownPlanOrPublic = { _or: [{ is_public: { _eq: true } }, { tenants: { id: { _eq: TENANT_SESSION_VARIABLE } } }] };

export const TRACKED_TABLES: readonly TrackedTable[] = [
  {
    table: 'plans',
    graphqlName: 'plans',
    arrayRelationships: [{ name: 'tenants', remoteTable: 'tenants', remoteColumn: 'plan_id' }],
    select: {
      owner: { columns: [...planPublicColumns, ...planPriceColumns], filter: ownPlanOrPublic },
      tenant_admin: { columns: [...planPublicColumns, ...planPriceColumns], filter: ownPlanOrPublic },
      // Members and guests see no billing: no prices (the public price list is anonymous's).
      member: { columns: planPublicColumns, filter: ownPlanOrPublic },
      guest: { columns: planPublicColumns, filter: ownPlanOrPublic },
      // The public price list.
      anonymous: { columns: [...planPublicColumns, ...planPriceColumns], filter: { is_public: { _eq: true } }, limit: 50 },
    },
  },
  {
    table: 'users',
    graphqlName: 'users',
    arrayRelationships: [{ name: 'memberships', remoteTable: 'tenant_members', remoteColumn: 'user_id' }],
    // Global identities: a role sees the users who are members of its tenant, nobody else.
    select: {
      owner: { columns: ['id', 'email', 'display_name', 'email_verified_at', 'created_at'], filter: { memberships: { tenant_id: { _eq: TENANT_SESSION_VARIABLE } } }, limit: 500 },
      tenant_admin: { columns: ['id', 'email', 'display_name', 'email_verified_at', 'created_at'], filter: { memberships: { tenant_id: { _eq: TENANT_SESSION_VARIABLE } } }, limit: 500 },
      member: { columns: ['id', 'display_name'], filter: { memberships: { tenant_id: { _eq: TENANT_SESSION_VARIABLE } } }, limit: 500 },
      guest: { columns: ['id', 'display_name'], filter: { memberships: { tenant_id: { _eq: TENANT_SESSION_VARIABLE } } }, limit: 500 },
    },
  },
  {
    table: 'tenants',
    graphqlName: 'tenants',
    tenantColumn: 'id',
    objectRelationships: [
      { name: 'plan', using: { column: 'plan_id' } },
      { name: 'subscription', using: { remoteTable: 'tenant_subscriptions', columnMapping: { id: 'tenant_id' } } },
    ],
    arrayRelationships: [
      { name: 'members', remoteTable: 'tenant_members', remoteColumn: 'tenant_id' },
      { name: 'domains', remoteTable: 'tenant_domains', remoteColumn: 'tenant_id' },
      { name: 'settings_entries', remoteTable: 'tenant_settings', remoteColumn: 'tenant_id' },
      { name: 'projects', remoteTable: 'projects', remoteColumn: 'tenant_id' },
    ],
    computedFields: FEATURE_COMPUTED_FIELDS,
    // Every tenant role may ask what its plan includes; the Stripe customer is the owner's.
    select: {
      owner: { columns: [...tenantManagerColumns, 'stripe_customer_id'], computedFields: featureFieldNames, limit: 1 },
      tenant_admin: { columns: tenantManagerColumns, computedFields: featureFieldNames, limit: 1 },
      member: { columns: ['id', 'slug', 'name', 'status', 'plan_id', 'settings', 'created_at'], computedFields: featureFieldNames, limit: 1 },
      guest: { columns: ['id', 'slug', 'name', 'settings'], computedFields: featureFieldNames, limit: 1 },
      // Public branding of the tenant the edge resolved (subdomain, X-Tenant-Slug, domain):
      // without a token Hasura takes X-Hasura-Tenant-Id from the edge's header.
      anonymous: { columns: ['slug', 'name', 'settings'], filter: { status: { _eq: 'active' } }, limit: 1 },
    },
    update: {
      owner: { columns: ['name', 'settings'] },
      tenant_admin: { columns: ['settings'] },
    },
  },
  {
    table: 'tenant_members',
    graphqlName: 'tenant_members',
    tenantColumn: 'tenant_id',
    objectRelationships: [tenantRelationship, { name: 'user', using: { column: 'user_id' } }],
    select: {
      owner: { columns: memberManagerColumns, allowAggregations: true, limit: 500 },
      tenant_admin: { columns: memberManagerColumns, allowAggregations: true, limit: 500 },
      member: { columns: memberColumns, limit: 500 },
      guest: { columns: memberColumns, limit: 500 },
    },
    insert: {
      owner: { columns: ['user_id', 'role', 'permissions'], set: { invited_by: USER_SESSION_VARIABLE } },
      tenant_admin: { columns: ['user_id', 'role', 'permissions'], check: BELOW_OWNER, set: { invited_by: USER_SESSION_VARIABLE } },
    },
    update: {
      owner: { columns: ['role', 'permissions'] },
      tenant_admin: { columns: ['role', 'permissions'], filter: BELOW_OWNER, check: BELOW_OWNER },
    },
    delete: {
      owner: {},
      tenant_admin: { filter: BELOW_OWNER },
    },
  },
  {
    table: 'tenant_domains',
    graphqlName: 'tenant_domains',
    tenantColumn: 'tenant_id',
    objectRelationships: [tenantRelationship],
    select: {
      ...tenantFor(MANAGERS, { columns: ['id', 'tenant_id', 'domain', 'is_primary', 'verification_token', 'verified_at', 'created_at', 'updated_at'], limit: 100 }),
      ...tenantFor(['member', 'guest'], { columns: ['id', 'tenant_id', 'domain', 'is_primary', 'verified_at'], limit: 100 }),
    },
    // verified_at and verification_token are never client-writable: a domain is verified
    // by DNS (tenantry domains verify), or anyone could claim anyone's domain at the edge.
    // A custom domain needs the plan's custom_domains: the database trigger refuses anyway,
    // the check makes Hasura's answer a permission error rather than a database one.
    insert: tenantFor(MANAGERS, { columns: ['domain', 'is_primary'], check: tenantHasFeature('custom_domains') }),
    update: tenantFor(MANAGERS, { columns: ['is_primary'] }),
    delete: tenantFor(MANAGERS, {}),
  },
  {
    table: 'tenant_settings',
    graphqlName: 'tenant_settings',
    tenantColumn: 'tenant_id',
    objectRelationships: [tenantRelationship],
    // Private settings: settings:read / settings:write are the managers' only.
    select: tenantFor(MANAGERS, { columns: ['tenant_id', 'key', 'value', 'updated_by', 'created_at', 'updated_at'], limit: 500 }),
    insert: tenantFor(MANAGERS, { columns: ['key', 'value'], set: { updated_by: USER_SESSION_VARIABLE } }),
    update: tenantFor(MANAGERS, { columns: ['value'], set: { updated_by: USER_SESSION_VARIABLE } }),
    delete: tenantFor(MANAGERS, {}),
  },
  {
    table: 'tenant_invitations',
    graphqlName: 'tenant_invitations',
    tenantColumn: 'tenant_id',
    objectRelationships: [tenantRelationship],
    // Created and accepted through the auth service (it mails the token); never token_hash.
    select: tenantFor(MANAGERS, {
      columns: ['id', 'tenant_id', 'email', 'role', 'status', 'invited_by', 'expires_at', 'last_sent_at', 'accepted_at', 'accepted_by', 'revoked_at', 'created_at', 'updated_at'],
      limit: 500,
    }),
    delete: tenantFor(MANAGERS, {}),
  },
  {
    table: 'api_keys',
    graphqlName: 'api_keys',
    tenantColumn: 'tenant_id',
    objectRelationships: [tenantRelationship],
    // Created through the auth service (it shows the key once); never key_hash.
    select: tenantFor(MANAGERS, {
      columns: ['id', 'tenant_id', 'name', 'prefix', 'role', 'read_only', 'created_by', 'expires_at', 'revoked_at', 'last_used_at', 'created_at', 'updated_at'],
      limit: 500,
    }),
    update: tenantFor(MANAGERS, { columns: ['name', 'revoked_at'] }),
  },
  {
    table: 'tenant_subscriptions',
    graphqlName: 'tenant_subscriptions',
    tenantColumn: 'tenant_id',
    objectRelationships: [tenantRelationship, { name: 'plan', using: { column: 'plan_id' } }],
    // Billing: owners and admins read it (Stripe ids the owner only); members and guests
    // see nothing (the plan in force is tenants.plan_id, its features the computed fields).
    select: {
      owner: { columns: [...subscriptionAdminColumns, 'stripe_customer_id', 'stripe_subscription_id', 'stripe_price_id'], limit: 1 },
      tenant_admin: { columns: subscriptionAdminColumns, limit: 1 },
    },
  },
  {
    table: 'tenant_usage',
    graphqlName: 'tenant_usage',
    tenantColumn: 'tenant_id',
    objectRelationships: [tenantRelationship],
    select: tenantFor(MANAGERS, {
      columns: ['tenant_id', 'metric', 'period_start', 'quantity', 'reported_quantity', 'reported_at', 'updated_at'],
      allowAggregations: true,
      limit: 5000,
    }),
  },
  {
    // The quota mails sent (80 % and 100 % of the month's API requests), once per month each.
    table: 'quota_notices',
    graphqlName: 'quota_notices',
    tenantColumn: 'tenant_id',
    objectRelationships: [tenantRelationship],
    select: tenantFor(MANAGERS, {
      columns: ['tenant_id', 'metric', 'month', 'threshold_percent', 'used', 'quota', 'sent_at'],
      limit: 200,
    }),
  },
  {
    table: 'audit_log',
    graphqlName: 'audit_log',
    tenantColumn: 'tenant_id',
    objectRelationships: [tenantRelationship],
    select: tenantFor(MANAGERS, {
      columns: ['id', 'tenant_id', 'actor', 'actor_user_id', 'action', 'target_type', 'target_id', 'before', 'after', 'reason', 'request_id', 'created_at'],
      limit: 200,
    }),
  },
  {
    // Stored objects (files:read for every role). Written only by the storage service, which
    // checks the object in S3 and the storage limit: no insert, update or delete here.
    table: 'files',
    graphqlName: 'files',
    tenantColumn: 'tenant_id',
    objectRelationships: [tenantRelationship, { name: 'uploader', using: { column: 'uploaded_by' } }],
    select: tenantFor(READERS, { columns: fileColumns, allowAggregations: true, limit: 1000 }),
  },
  {
    // Uploads handed out and what became of them: those who may write files see them.
    table: 'file_uploads',
    graphqlName: 'file_uploads',
    tenantColumn: 'tenant_id',
    objectRelationships: [tenantRelationship],
    select: tenantFor(WRITERS, { columns: fileUploadColumns, limit: 1000 }),
  },
  {
    table: 'projects',
    graphqlName: 'projects',
    tenantColumn: 'tenant_id',
    objectRelationships: [tenantRelationship, { name: 'creator', using: { column: 'created_by' } }],
    select: {
      ...tenantFor(WRITERS, { columns: projectColumns, allowAggregations: true, limit: 1000 }),
      guest: { columns: projectColumns, limit: 1000 },
    },
    insert: tenantFor(WRITERS, { columns: projectWrites, set: { created_by: USER_SESSION_VARIABLE } }),
    update: tenantFor(WRITERS, { columns: projectWrites }),
    delete: tenantFor(WRITERS, {}),
  },
];

/**
 * Tables deliberately not tracked: nothing of them is reachable through GraphQL. Every table
 * of the schema is either tracked or listed here, with the reason.
 */
export const INTERNAL_TABLES: Readonly<Record<string, string>> = {
  refresh_tokens: 'login sessions: the auth service only (hashed tokens)',
  stripe_events: 'the Stripe webhook inbox: the billing service only',
  auth_email_tokens: 'email verification and reset tokens: the auth service only',
  usage_ingest_offsets: "the usage worker's position in the edge's usage stream: the billing service only",
};

/** Columns no role may ever select, whatever the database grants. */
export const SECRET_COLUMNS: readonly string[] = ['password_hash', 'key_hash', 'token_hash'];
/** Columns no client may ever write: the edge trusts them. */
export const SERVER_ONLY_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  tenant_domains: ['verified_at', 'verification_token', 'tenant_id'],
  tenants: [
    'status', 'plan_id', 'slug', 'max_users', 'max_storage_bytes', 'max_api_requests_month', 'stripe_customer_id', 'feature_overrides',
  ],
};
/**
 * Billing columns ('*': the whole table). Owners and admins read billing; members and guests
 * (and their read-only twins) see none of these. The public price list is anonymous's.
 */
export const BILLING_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  plans: ['monthly_price_cents', 'currency', 'stripe_price_id', 'stripe_product_id', 'stripe_metered_price_id', 'meter_event_name', 'meter_metric'],
  tenants: ['stripe_customer_id', 'feature_overrides'],
  tenant_subscriptions: ['*'],
  tenant_usage: ['*'],
  quota_notices: ['*'],
};
/** The tenant roles that may read billing (BILLING_COLUMNS); every other tenant role sees none. */
export const BILLING_READERS: readonly BaseHasuraRole[] = ['owner', 'tenant_admin'];
