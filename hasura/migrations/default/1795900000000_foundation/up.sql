-- Foundation: tenants, members, domains, settings, identity, billing, usage, audit, and
-- the row-level security contract every tenant table follows.
--
-- Roles are created by `npm run db:bootstrap`, which takes their passwords from the
-- environment; a migration never holds a password. This file only refers to them.
DO $$
DECLARE
  required text;
BEGIN
  FOREACH required IN ARRAY ARRAY['hasura_app', 'app_service', 'platform_admin', 'app_definer'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = required) THEN
      RAISE EXCEPTION 'role "%" does not exist: run `npm run db:bootstrap` before migrating', required;
    END IF;
  END LOOP;
END
$$;

CREATE SCHEMA app;
REVOKE ALL ON SCHEMA app FROM PUBLIC;
GRANT USAGE ON SCHEMA app TO hasura_app, app_service, platform_admin;
-- app_definer owns the SECURITY DEFINER helpers; owning a function requires CREATE here.
GRANT USAGE, CREATE ON SCHEMA app TO app_definer;

-- ---------------------------------------------------------------------------
-- The tenant context contract.
-- Hasura sends session variables as ONE setting, `hasura.user`, a JSON object with
-- lower-case keys, set with SET LOCAL inside mutation transactions only. The services set
-- the very same setting with set_config(..., true). A pooled connection that once ran
-- SET LOCAL reads '' afterwards, hence the nullif.
-- ---------------------------------------------------------------------------
CREATE FUNCTION app.session() RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(current_setting('hasura.user', true), '')::jsonb $$;

CREATE FUNCTION app.has_session() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT app.session() IS NOT NULL $$;

CREATE FUNCTION app.current_tenant_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT (app.session() ->> 'x-hasura-tenant-id')::uuid $$;

CREATE FUNCTION app.current_user_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT (app.session() ->> 'x-hasura-user-id')::uuid $$;

CREATE FUNCTION app.current_hasura_role() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT app.session() ->> 'x-hasura-role' $$;

-- Who to name in the audit log: the CLI sets tenantry.actor, a request carries its user.
CREATE FUNCTION app.current_actor() RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(
    nullif(current_setting('tenantry.actor', true), ''),
    'user:' || (app.session() ->> 'x-hasura-user-id'),
    'db:' || session_user
  )
$$;

-- ---------------------------------------------------------------------------
-- Row-level security for a tenant table, in one place so every table gets the same.
-- app_service: every command needs the session tenant.
-- hasura_app: writes need the session tenant (Hasura sets it on mutations); reads defer
-- to Hasura's permissions only while no session is set, because Hasura never sets one
-- for queries and subscriptions.
-- The session is read in a (SELECT …) so the planner evaluates it once as an InitPlan,
-- and written out rather than through app.current_tenant_id(): the planner re-inlines
-- SQL functions on every planning, which bench:rls measured at a quarter of a primary-key
-- lookup's time.
-- ---------------------------------------------------------------------------
CREATE FUNCTION app.enable_tenant_isolation(target regclass, tenant_column name DEFAULT 'tenant_id')
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  session_tenant constant text :=
    $sql$(SELECT (nullif(current_setting('hasura.user', true), '')::jsonb ->> 'x-hasura-tenant-id')::uuid)$sql$;
  no_session constant text := $sql$(SELECT nullif(current_setting('hasura.user', true), '') IS NULL)$sql$;
  same_tenant text := format('%I = %s', tenant_column, session_tenant);
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);

  EXECUTE format('CREATE POLICY service_select ON %s FOR SELECT TO app_service USING (%s)', target, same_tenant);
  EXECUTE format('CREATE POLICY service_insert ON %s FOR INSERT TO app_service WITH CHECK (%s)', target, same_tenant);
  EXECUTE format('CREATE POLICY service_update ON %s FOR UPDATE TO app_service USING (%s) WITH CHECK (%s)', target, same_tenant, same_tenant);
  EXECUTE format('CREATE POLICY service_delete ON %s FOR DELETE TO app_service USING (%s)', target, same_tenant);

  EXECUTE format('CREATE POLICY hasura_select ON %s FOR SELECT TO hasura_app USING (%s OR %s)', target, no_session, same_tenant);
  EXECUTE format('CREATE POLICY hasura_insert ON %s FOR INSERT TO hasura_app WITH CHECK (%s)', target, same_tenant);
  EXECUTE format('CREATE POLICY hasura_update ON %s FOR UPDATE TO hasura_app USING (%s) WITH CHECK (%s)', target, same_tenant, same_tenant);
  EXECUTE format('CREATE POLICY hasura_delete ON %s FOR DELETE TO hasura_app USING (%s)', target, same_tenant);
END
$$;
COMMENT ON FUNCTION app.enable_tenant_isolation(regclass, name) IS
  'ENABLE + FORCE row-level security and the standard per-command policies for app_service and hasura_app. Call it for every table with tenant_id.';

CREATE FUNCTION app.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

-- ---------------------------------------------------------------------------
-- Plans (public catalogue, no tenant).
-- ---------------------------------------------------------------------------
CREATE TABLE plans (
  id text PRIMARY KEY CONSTRAINT plans_id_format CHECK (id ~ '^[a-z][a-z0-9_-]{1,31}$'),
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  monthly_price_cents integer NOT NULL DEFAULT 0 CHECK (monthly_price_cents >= 0),
  currency text NOT NULL DEFAULT 'usd' CHECK (currency ~ '^[a-z]{3}$'),
  stripe_price_id text UNIQUE,
  -- NULL means unlimited.
  max_users integer CHECK (max_users > 0),
  max_storage_bytes bigint CHECK (max_storage_bytes > 0),
  max_api_requests_month bigint CHECK (max_api_requests_month > 0),
  rate_limit_rps integer NOT NULL DEFAULT 10 CHECK (rate_limit_rps > 0),
  features jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(features) = 'object'),
  is_public boolean NOT NULL DEFAULT true,
  sort_order integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER plans_touch_updated_at BEFORE UPDATE ON plans FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

INSERT INTO plans (id, name, description, monthly_price_cents, max_users, max_storage_bytes, max_api_requests_month, rate_limit_rps, features, is_public, sort_order) VALUES
  ('free',       'Free',       'For trying things out',        0,     3,    1073741824,     10000,    5, '{"custom_domains": false, "api_keys": false, "sso": false}', true,  0),
  ('starter',    'Starter',    'For small teams',              2900,  10,   10737418240,    100000,   20, '{"custom_domains": true, "api_keys": true, "sso": false}',  true,  1),
  ('pro',        'Pro',        'For growing businesses',       9900,  50,   107374182400,   1000000,  50, '{"custom_domains": true, "api_keys": true, "sso": true}',   true,  2),
  ('enterprise', 'Enterprise', 'Custom limits and support',    0,     NULL, NULL,           NULL,     200, '{"custom_domains": true, "api_keys": true, "sso": true, "audit_export": true}', false, 3);

-- ---------------------------------------------------------------------------
-- Users (global identities; tenancy comes from tenant_members).
-- ---------------------------------------------------------------------------
CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL CONSTRAINT users_email_format CHECK (length(email) <= 320 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
  email_verified_at timestamptz,
  password_hash text,
  display_name text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
  is_staff boolean NOT NULL DEFAULT false,
  disabled_at timestamptz,
  last_login_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE TRIGGER users_touch_updated_at BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- ---------------------------------------------------------------------------
-- Tenants. The tenant column of this table is its own id.
-- ---------------------------------------------------------------------------
CREATE TYPE tenant_status AS ENUM ('active', 'suspended', 'deleted');
CREATE TYPE member_role AS ENUM ('owner', 'admin', 'member', 'guest');

-- Labels a tenant may not take, because the edge or the platform uses them as host names.
CREATE FUNCTION app.is_reserved_slug(slug text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT slug = ANY (ARRAY[
    'admin', 'api', 'app', 'assets', 'auth', 'billing', 'blog', 'cdn', 'console', 'dashboard',
    'default', 'docs', 'edge', 'graphql', 'hasura', 'help', 'internal', 'localhost', 'mail',
    'null', 'platform', 'public', 'root', 'smtp', 'static', 'staff', 'status', 'storage',
    'support', 'system', 'tenantry', 'undefined', 'webhooks', 'www'
  ])
$$;

CREATE FUNCTION app.is_valid_slug(slug text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT slug ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$' AND slug !~ '--' AND NOT app.is_reserved_slug(slug)
$$;

CREATE TABLE tenants (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  slug text NOT NULL CONSTRAINT tenants_slug_valid CHECK (app.is_valid_slug(slug)),
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  status tenant_status NOT NULL DEFAULT 'active',
  status_changed_at timestamptz NOT NULL DEFAULT now(),
  suspended_at timestamptz,
  suspension_reason text,
  deleted_at timestamptz,
  -- When a soft-deleted tenant's data may be purged for good.
  purge_after timestamptz,
  plan_id text NOT NULL DEFAULT 'free' REFERENCES plans (id),
  owner_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
  -- Per-tenant overrides of the plan's limits; NULL takes the plan's.
  max_users integer CHECK (max_users > 0),
  max_storage_bytes bigint CHECK (max_storage_bytes > 0),
  max_api_requests_month bigint CHECK (max_api_requests_month > 0),
  -- Public, non-secret settings such as branding; private ones live in tenant_settings.
  settings jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT tenants_slug_key UNIQUE (slug),
  CONSTRAINT tenants_status_timestamps CHECK (
    (status <> 'suspended' OR suspended_at IS NOT NULL) AND (status <> 'deleted' OR deleted_at IS NOT NULL)
  )
);
CREATE INDEX tenants_status_idx ON tenants (status);
CREATE TRIGGER tenants_touch_updated_at BEFORE UPDATE ON tenants FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

CREATE FUNCTION app.stamp_tenant_status() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
    NEW.status_changed_at := now();
    NEW.suspended_at := CASE WHEN NEW.status = 'suspended' THEN coalesce(NEW.suspended_at, now()) END;
    NEW.deleted_at := CASE WHEN NEW.status = 'deleted' THEN coalesce(NEW.deleted_at, now()) END;
    IF NEW.status <> 'suspended' THEN NEW.suspension_reason := NULL; END IF;
    IF NEW.status <> 'deleted' THEN NEW.purge_after := NULL; END IF;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER tenants_stamp_status BEFORE INSERT OR UPDATE OF status ON tenants FOR EACH ROW EXECUTE FUNCTION app.stamp_tenant_status();

SELECT app.enable_tenant_isolation('tenants', 'id');

-- ---------------------------------------------------------------------------
-- Members.
-- ---------------------------------------------------------------------------
CREATE FUNCTION app.is_valid_permission_list(permissions text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT coalesce(bool_and(p ~ '^(\*|[a-z][a-z0-9_]*:(\*|[a-z][a-z0-9_]*))$'), true) FROM unnest(permissions) AS p
$$;

CREATE TABLE tenant_members (
  tenant_id uuid NOT NULL DEFAULT app.current_tenant_id() REFERENCES tenants (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role member_role NOT NULL DEFAULT 'member',
  -- Extra permissions beyond the role's, e.g. {'billing:read'}.
  permissions text[] NOT NULL DEFAULT '{}' CONSTRAINT tenant_members_permissions_valid CHECK (app.is_valid_permission_list(permissions)),
  invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
  joined_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX tenant_members_user_id_idx ON tenant_members (user_id);
CREATE TRIGGER tenant_members_touch_updated_at BEFORE UPDATE ON tenant_members FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
SELECT app.enable_tenant_isolation('tenant_members');

-- Effective limits: the tenant's override, else its plan's. NULL means unlimited.
CREATE FUNCTION app.tenant_limits(p_tenant_id uuid)
RETURNS TABLE (max_users integer, max_storage_bytes bigint, max_api_requests_month bigint, rate_limit_rps integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
  SELECT coalesce(t.max_users, p.max_users),
         coalesce(t.max_storage_bytes, p.max_storage_bytes),
         coalesce(t.max_api_requests_month, p.max_api_requests_month),
         p.rate_limit_rps
  FROM tenants t JOIN plans p ON p.id = t.plan_id
  WHERE t.id = p_tenant_id
$$;

-- The user limit, race-free: the tenant row is locked before counting, so concurrent
-- inserts for one tenant take turns and each counts the rows committed before it. An AFTER
-- trigger, so row-level security refuses a foreign tenant's row first: the limit (and the
-- lock) of a tenant the caller cannot see never shows. FOR NO KEY UPDATE does not
-- conflict with the KEY SHARE locks of foreign-key checks on tenants(id), so it cannot
-- deadlock with them.
CREATE FUNCTION app.enforce_member_limit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
DECLARE
  user_limit integer;
  member_count integer;
BEGIN
  PERFORM 1 FROM tenants WHERE id = NEW.tenant_id FOR NO KEY UPDATE;
  SELECT l.max_users INTO user_limit FROM app.tenant_limits(NEW.tenant_id) AS l;
  IF user_limit IS NULL THEN
    RETURN NULL;
  END IF;
  -- The new row is already in: it counts.
  SELECT count(*) INTO member_count FROM tenant_members WHERE tenant_id = NEW.tenant_id;
  IF member_count > user_limit THEN
    RAISE EXCEPTION 'tenant has reached its limit of % users', user_limit
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_members_user_limit',
            HINT = 'Remove a member or move the tenant to a plan with more users.';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER tenant_members_user_limit AFTER INSERT OR UPDATE OF tenant_id ON tenant_members
  FOR EACH ROW EXECUTE FUNCTION app.enforce_member_limit();

-- A tenant never loses its last owner. Deferred, so ownership can be transferred inside
-- one transaction; the tenant row is locked so two concurrent demotions cannot both pass.
-- When the tenant itself is being deleted, its members go with it.
CREATE FUNCTION app.ensure_tenant_keeps_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
BEGIN
  IF OLD.role <> 'owner' THEN
    RETURN NULL;
  END IF;
  PERFORM 1 FROM tenants WHERE id = OLD.tenant_id FOR NO KEY UPDATE;
  IF FOUND AND NOT EXISTS (SELECT 1 FROM tenant_members WHERE tenant_id = OLD.tenant_id AND role = 'owner') THEN
    RAISE EXCEPTION 'a tenant must keep at least one owner'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_members_last_owner',
            HINT = 'Make another member an owner first.';
  END IF;
  RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER tenant_members_keep_owner AFTER UPDATE OF role, tenant_id OR DELETE ON tenant_members
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION app.ensure_tenant_keeps_owner();

-- Membership lookups for policies and services. SECURITY DEFINER with a fixed search_path:
-- a policy that selected from tenant_members inside tenant_members' own policy would recurse.
CREATE FUNCTION app.member_role(p_tenant_id uuid, p_user_id uuid) RETURNS member_role
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$ SELECT role FROM tenant_members WHERE tenant_id = p_tenant_id AND user_id = p_user_id $$;

CREATE FUNCTION app.current_member_role() RETURNS member_role
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$ SELECT app.member_role(app.current_tenant_id(), app.current_user_id()) $$;

-- A user's tenants across the whole platform (the auth service's tenant switcher).
CREATE FUNCTION app.user_tenants(p_user_id uuid)
RETURNS TABLE (tenant_id uuid, slug text, name text, status tenant_status, role member_role, joined_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
  SELECT t.id, t.slug, t.name, t.status, m.role, m.joined_at
  FROM tenant_members m JOIN tenants t ON t.id = m.tenant_id
  WHERE m.user_id = p_user_id AND t.status <> 'deleted'
  ORDER BY t.slug
$$;

-- ---------------------------------------------------------------------------
-- Custom domains.
-- ---------------------------------------------------------------------------
-- Stored normalised: lower case, no trailing dot, IDN as punycode (so ASCII only).
CREATE FUNCTION app.is_normalised_domain(domain text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT length(domain) <= 253
     AND domain ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$'
$$;

CREATE TABLE tenant_domains (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL DEFAULT app.current_tenant_id() REFERENCES tenants (id) ON DELETE CASCADE,
  domain text NOT NULL CONSTRAINT tenant_domains_domain_normalised CHECK (app.is_normalised_domain(domain)),
  is_primary boolean NOT NULL DEFAULT false,
  verification_token text NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', ''),
  verified_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT tenant_domains_domain_key UNIQUE (domain)
);
CREATE INDEX tenant_domains_tenant_id_idx ON tenant_domains (tenant_id);
CREATE UNIQUE INDEX tenant_domains_one_primary ON tenant_domains (tenant_id) WHERE is_primary;
CREATE TRIGGER tenant_domains_touch_updated_at BEFORE UPDATE ON tenant_domains FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
SELECT app.enable_tenant_isolation('tenant_domains');

-- ---------------------------------------------------------------------------
-- Settings (private key → JSON value; dotted keys such as branding.primary_color).
-- ---------------------------------------------------------------------------
CREATE TABLE tenant_settings (
  tenant_id uuid NOT NULL DEFAULT app.current_tenant_id() REFERENCES tenants (id) ON DELETE CASCADE,
  key text NOT NULL CONSTRAINT tenant_settings_key_format CHECK (length(key) <= 200 AND key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
  value jsonb NOT NULL,
  updated_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, key)
);
CREATE TRIGGER tenant_settings_touch_updated_at BEFORE UPDATE ON tenant_settings FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
SELECT app.enable_tenant_isolation('tenant_settings');

-- ---------------------------------------------------------------------------
-- Invitations (the token itself is mailed; only its hash is kept).
-- ---------------------------------------------------------------------------
CREATE TYPE invitation_status AS ENUM ('pending', 'accepted', 'revoked', 'expired');

CREATE TABLE tenant_invitations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL DEFAULT app.current_tenant_id() REFERENCES tenants (id) ON DELETE CASCADE,
  email text NOT NULL CHECK (length(email) <= 320 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
  role member_role NOT NULL DEFAULT 'member',
  token_hash text NOT NULL,
  status invitation_status NOT NULL DEFAULT 'pending',
  invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
  expires_at timestamptz NOT NULL DEFAULT now() + interval '7 days',
  last_sent_at timestamptz NOT NULL DEFAULT now(),
  accepted_at timestamptz,
  accepted_by uuid REFERENCES users (id) ON DELETE SET NULL,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT tenant_invitations_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX tenant_invitations_tenant_id_idx ON tenant_invitations (tenant_id, created_at DESC);
CREATE UNIQUE INDEX tenant_invitations_one_pending ON tenant_invitations (tenant_id, lower(email)) WHERE status = 'pending';
CREATE TRIGGER tenant_invitations_touch_updated_at BEFORE UPDATE ON tenant_invitations FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
SELECT app.enable_tenant_isolation('tenant_invitations');

-- ---------------------------------------------------------------------------
-- Refresh tokens: they belong to a user's login session, not to a tenant's data, so they
-- carry the tenant the session is scoped to under another name and only app_service
-- reaches them. Opaque tokens, stored hashed, rotated on every use; a family shares
-- family_id so reuse of a rotated token can revoke the whole family.
-- ---------------------------------------------------------------------------
CREATE TABLE refresh_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  family_id uuid NOT NULL,
  parent_id uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
  token_hash text NOT NULL,
  session_tenant_id uuid REFERENCES tenants (id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  rotated_at timestamptz,
  revoked_at timestamptz,
  revoked_reason text,
  user_agent text,
  ip inet,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_session_tenant_id_idx ON refresh_tokens (session_tenant_id);

-- ---------------------------------------------------------------------------
-- API keys: shown once, stored hashed; the public prefix finds the row.
-- ---------------------------------------------------------------------------
CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL DEFAULT app.current_tenant_id() REFERENCES tenants (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  prefix text NOT NULL CHECK (prefix ~ '^[A-Za-z0-9_]{6,32}$'),
  key_hash text NOT NULL,
  role member_role NOT NULL DEFAULT 'member',
  scopes text[] NOT NULL DEFAULT '{}' CONSTRAINT api_keys_scopes_valid CHECK (app.is_valid_permission_list(scopes)),
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT api_keys_prefix_key UNIQUE (prefix)
);
CREATE INDEX api_keys_tenant_id_idx ON api_keys (tenant_id);
CREATE TRIGGER api_keys_touch_updated_at BEFORE UPDATE ON api_keys FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
SELECT app.enable_tenant_isolation('api_keys');

-- ---------------------------------------------------------------------------
-- Billing: one subscription per tenant, mirrored from Stripe; the Stripe event inbox.
-- ---------------------------------------------------------------------------
CREATE TABLE tenant_subscriptions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL DEFAULT app.current_tenant_id() REFERENCES tenants (id) ON DELETE CASCADE,
  plan_id text NOT NULL REFERENCES plans (id),
  status text NOT NULL DEFAULT 'incomplete' CHECK (status IN (
    'incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused'
  )),
  stripe_customer_id text,
  stripe_subscription_id text,
  current_period_start timestamptz,
  current_period_end timestamptz,
  cancel_at_period_end boolean NOT NULL DEFAULT false,
  canceled_at timestamptz,
  -- The `created` time of the newest Stripe event applied, so older events arriving late are ignored.
  stripe_event_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT tenant_subscriptions_tenant_id_key UNIQUE (tenant_id),
  CONSTRAINT tenant_subscriptions_stripe_subscription_id_key UNIQUE (stripe_subscription_id)
);
CREATE INDEX tenant_subscriptions_stripe_customer_id_idx ON tenant_subscriptions (stripe_customer_id);
CREATE TRIGGER tenant_subscriptions_touch_updated_at BEFORE UPDATE ON tenant_subscriptions FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
SELECT app.enable_tenant_isolation('tenant_subscriptions');

-- Every webhook lands here first, deduplicated on Stripe's event id, then is processed.
CREATE TABLE stripe_events (
  id text PRIMARY KEY CHECK (id ~ '^evt_'),
  type text NOT NULL,
  livemode boolean NOT NULL,
  api_version text,
  stripe_created_at timestamptz NOT NULL,
  payload jsonb NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  processed_at timestamptz,
  attempts integer NOT NULL DEFAULT 0,
  last_error text
);
CREATE INDEX stripe_events_unprocessed_idx ON stripe_events (received_at) WHERE processed_at IS NULL;

-- ---------------------------------------------------------------------------
-- Usage: hourly buckets, one row per tenant × metric × hour, incremented with an upsert.
-- ---------------------------------------------------------------------------
CREATE TABLE tenant_usage (
  tenant_id uuid NOT NULL DEFAULT app.current_tenant_id() REFERENCES tenants (id) ON DELETE CASCADE,
  metric text NOT NULL CHECK (metric ~ '^[a-z][a-z0-9_.]{0,62}$'),
  period_start timestamptz NOT NULL CONSTRAINT tenant_usage_hourly CHECK (
    date_trunc('hour', period_start AT TIME ZONE 'UTC') = period_start AT TIME ZONE 'UTC'
  ),
  quantity bigint NOT NULL DEFAULT 0 CHECK (quantity >= 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, metric, period_start)
);
SELECT app.enable_tenant_isolation('tenant_usage');

-- ---------------------------------------------------------------------------
-- Audit log: append-only for every role but the owner. tenant_id is NULL for platform
-- entries (a purged tenant, a new user).
-- ---------------------------------------------------------------------------
CREATE TABLE audit_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id uuid DEFAULT app.current_tenant_id() REFERENCES tenants (id) ON DELETE CASCADE,
  actor text NOT NULL DEFAULT app.current_actor(),
  actor_user_id uuid DEFAULT app.current_user_id(),
  db_role text NOT NULL DEFAULT current_user,
  action text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_.]+$'),
  target_type text NOT NULL,
  target_id text,
  before jsonb,
  after jsonb,
  reason text,
  request_id text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_id_created_at_idx ON audit_log (tenant_id, created_at DESC);
SELECT app.enable_tenant_isolation('audit_log');

-- Row changes of the tables an ops team cares about, written by the database itself so
-- the CLI, the services and Hasura are all covered. Secrets never reach the log.
CREATE FUNCTION app.audit_row_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
DECLARE
  before_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) - 'key_hash' - 'token_hash' - 'password_hash' END;
  after_row jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) - 'key_hash' - 'token_hash' - 'password_hash' END;
  row_data jsonb := coalesce(after_row, before_row);
  target_column text := TG_ARGV[0];
  row_tenant uuid := (row_data ->> CASE WHEN TG_TABLE_NAME = 'tenants' THEN 'id' ELSE 'tenant_id' END)::uuid;
BEGIN
  -- A row removed together with its tenant is recorded as a platform entry.
  IF row_tenant IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tenants WHERE id = row_tenant) THEN
    row_tenant := NULL;
  END IF;
  -- Inside this function current_user is its owner; the role that made the change logged in.
  INSERT INTO audit_log (tenant_id, db_role, action, target_type, target_id, before, after, reason)
  VALUES (row_tenant, session_user, TG_TABLE_NAME || '.' || lower(TG_OP), TG_TABLE_NAME, row_data ->> target_column,
          before_row, after_row, nullif(current_setting('tenantry.reason', true), ''));
  RETURN NULL;
END
$$;

CREATE TRIGGER tenants_audit AFTER INSERT OR UPDATE OR DELETE ON tenants
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('id');
CREATE TRIGGER tenant_members_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_members
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('user_id');
CREATE TRIGGER tenant_domains_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_domains
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('domain');
CREATE TRIGGER tenant_settings_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_settings
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('key');
CREATE TRIGGER tenant_invitations_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_invitations
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('id');
-- last_used_at changes on every use of a key: not an audit event.
CREATE TRIGGER api_keys_audit AFTER INSERT OR DELETE OR UPDATE OF name, role, scopes, expires_at, revoked_at ON api_keys
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('id');
CREATE TRIGGER tenant_subscriptions_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_subscriptions
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('id');

-- ---------------------------------------------------------------------------
-- Example tenant table: what a product team copies for its own tables.
-- ---------------------------------------------------------------------------
CREATE TABLE projects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL DEFAULT app.current_tenant_id() REFERENCES tenants (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
  description text NOT NULL DEFAULT '',
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
  created_by uuid DEFAULT app.current_user_id() REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_tenant_id_created_at_idx ON projects (tenant_id, created_at DESC, id);
CREATE TRIGGER projects_touch_updated_at BEFORE UPDATE ON projects FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
SELECT app.enable_tenant_isolation('projects');

-- ---------------------------------------------------------------------------
-- Helper ownership and execute rights.
-- ---------------------------------------------------------------------------
ALTER FUNCTION app.tenant_limits(uuid) OWNER TO app_definer;
ALTER FUNCTION app.enforce_member_limit() OWNER TO app_definer;
ALTER FUNCTION app.ensure_tenant_keeps_owner() OWNER TO app_definer;
ALTER FUNCTION app.member_role(uuid, uuid) OWNER TO app_definer;
ALTER FUNCTION app.current_member_role() OWNER TO app_definer;
ALTER FUNCTION app.user_tenants(uuid) OWNER TO app_definer;
ALTER FUNCTION app.audit_row_change() OWNER TO app_definer;

-- Helpers that answer about any tenant or user are for the services and the CLI only;
-- current_member_role() answers about the caller's own session and stays public.
REVOKE EXECUTE ON FUNCTION app.user_tenants(uuid), app.member_role(uuid, uuid), app.tenant_limits(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_tenants(uuid), app.member_role(uuid, uuid), app.tenant_limits(uuid) TO app_service, platform_admin;
REVOKE EXECUTE ON FUNCTION app.enable_tenant_isolation(regclass, name) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Table privileges. Row visibility is the policies' job; these decide which commands
-- and columns a role may use at all.
-- ---------------------------------------------------------------------------
GRANT SELECT ON plans TO hasura_app, app_service;

GRANT SELECT, INSERT, UPDATE, DELETE ON users, refresh_tokens, stripe_events TO app_service;
GRANT SELECT (id, email, display_name, email_verified_at, created_at) ON users TO hasura_app;

GRANT SELECT, INSERT, UPDATE, DELETE ON
  tenants, tenant_members, tenant_domains, tenant_settings, tenant_invitations,
  api_keys, tenant_subscriptions, projects
TO app_service;
GRANT SELECT, INSERT, UPDATE ON tenant_usage TO app_service;
GRANT SELECT, INSERT ON audit_log TO app_service;

GRANT SELECT, UPDATE (name, settings) ON tenants TO hasura_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_members, tenant_domains, tenant_settings, projects TO hasura_app;
GRANT SELECT (id, tenant_id, email, role, status, invited_by, expires_at, last_sent_at, accepted_at, accepted_by, revoked_at, created_at, updated_at),
      DELETE ON tenant_invitations TO hasura_app;
GRANT SELECT (id, tenant_id, name, prefix, role, scopes, created_by, expires_at, revoked_at, last_used_at, created_at, updated_at),
      UPDATE (name, revoked_at) ON api_keys TO hasura_app;
GRANT SELECT ON tenant_subscriptions, tenant_usage, audit_log TO hasura_app;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO platform_admin;
REVOKE UPDATE, DELETE ON audit_log FROM platform_admin;

GRANT SELECT, UPDATE ON tenants TO app_definer;
GRANT SELECT ON plans, tenant_members TO app_definer;
GRANT INSERT ON audit_log TO app_definer;
