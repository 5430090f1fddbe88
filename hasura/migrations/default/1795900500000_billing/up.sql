-- Billing (issue 15): plans that bind, the Stripe customer of a tenant without a
-- subscription, the webhook inbox's worker state, and usage reported to Stripe meters.
--
-- tenants.plan_id stays the one plan in force: the billing worker, `tenantry plan set` and
-- nothing else move it, through the definers below (app_service may not update tenants).
-- Features in force are the plan's features with the tenant's overrides on top; limits
-- were already the tenant's overrides over the plan's (app.tenant_limits).

-- ---------------------------------------------------------------------------
-- Schema: what Stripe needs us to remember.
-- ---------------------------------------------------------------------------
ALTER TABLE plans
  ADD COLUMN stripe_product_id text UNIQUE,
  -- A metered price beside the monthly one: usage of meter_metric (a tenant_usage metric) is
  -- sent to the Stripe Billing Meter whose event name is meter_event_name.
  ADD COLUMN stripe_metered_price_id text UNIQUE,
  ADD COLUMN meter_event_name text CONSTRAINT plans_meter_event_name_format CHECK (meter_event_name ~ '^[a-z][a-z0-9_.]{0,99}$'),
  ADD COLUMN meter_metric text CONSTRAINT plans_meter_metric_format CHECK (meter_metric ~ '^[a-z][a-z0-9_.]{0,62}$'),
  ADD CONSTRAINT plans_meter_complete CHECK ((meter_event_name IS NULL) = (meter_metric IS NULL));

ALTER TABLE tenants
  -- Created on first need (checkout, portal), before any subscription exists.
  ADD COLUMN stripe_customer_id text CONSTRAINT tenants_stripe_customer_id_key UNIQUE
    CONSTRAINT tenants_stripe_customer_id_format CHECK (stripe_customer_id ~ '^cus_[A-Za-z0-9]+$'),
  -- Per-tenant feature overrides over the plan's features (e.g. {"api_keys": true}).
  ADD COLUMN feature_overrides jsonb NOT NULL DEFAULT '{}'
    CONSTRAINT tenants_feature_overrides_object CHECK (jsonb_typeof(feature_overrides) = 'object');

ALTER TABLE tenant_subscriptions
  ADD COLUMN stripe_price_id text,
  ADD COLUMN trial_end timestamptz,
  -- When the subscription last became past_due (or unpaid): the grace period runs from here.
  ADD COLUMN past_due_since timestamptz,
  -- Stripe's cancellation_details.reason (payment_failed: ended for non-payment).
  ADD COLUMN cancellation_reason text;

-- The inbox. status: pending (to apply, at next_attempt_at), applied, ignored (a type the
-- worker does not act on, or an event older than the state it would overwrite), failed
-- (gave up after the worker's attempts; `tenantry billing replay` tries again).
ALTER TABLE stripe_events
  ADD COLUMN status text NOT NULL DEFAULT 'pending'
    CONSTRAINT stripe_events_status_valid CHECK (status IN ('pending', 'applied', 'ignored', 'failed')),
  -- The Stripe object whose state the event changes (a subscription or a customer): the
  -- worker applies one object's events one at a time.
  ADD COLUMN object_id text,
  ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN outcome text;
DROP INDEX stripe_events_unprocessed_idx;
CREATE INDEX stripe_events_due_idx ON stripe_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX stripe_events_object_idx ON stripe_events (object_id, stripe_created_at);
-- Wakes the worker as soon as an event is stored, without polling for it.
CREATE FUNCTION app.notify_stripe_event() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
  PERFORM pg_notify('stripe_events', NEW.id);
  RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION app.notify_stripe_event() FROM PUBLIC;
CREATE TRIGGER stripe_events_notify AFTER INSERT OR UPDATE OF status, next_attempt_at ON stripe_events
  FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION app.notify_stripe_event();

-- What was sent to Stripe's meter for a bucket, beside it: a reporter that crashes and runs
-- again sends the same identifier and Stripe drops the duplicate.
ALTER TABLE tenant_usage
  ADD COLUMN reported_quantity bigint CHECK (reported_quantity >= 0),
  ADD COLUMN reported_at timestamptz;

-- One audit entry per change of state: a write that changes nothing (the worker only moves
-- its event watermark, stripe_event_at) is not an entry.
DROP TRIGGER tenant_subscriptions_audit ON tenant_subscriptions;
CREATE TRIGGER tenant_subscriptions_audit AFTER INSERT OR DELETE ON tenant_subscriptions
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('id');
CREATE TRIGGER tenant_subscriptions_audit_update AFTER UPDATE ON tenant_subscriptions
  FOR EACH ROW
  WHEN ((to_jsonb(OLD) - 'updated_at' - 'stripe_event_at') IS DISTINCT FROM (to_jsonb(NEW) - 'updated_at' - 'stripe_event_at'))
  EXECUTE FUNCTION app.audit_row_change('id');
DROP TRIGGER tenants_audit ON tenants;
CREATE TRIGGER tenants_audit AFTER INSERT OR DELETE ON tenants
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('id');
CREATE TRIGGER tenants_audit_update AFTER UPDATE ON tenants
  FOR EACH ROW
  WHEN ((to_jsonb(OLD) - 'updated_at') IS DISTINCT FROM (to_jsonb(NEW) - 'updated_at'))
  EXECUTE FUNCTION app.audit_row_change('id');

-- ---------------------------------------------------------------------------
-- Entitlements: one answer, for services, policies, triggers and Hasura.
-- ---------------------------------------------------------------------------
-- The features in force for a plan and a tenant's overrides. SECURITY INVOKER: it reads
-- plans, which every application role may read.
CREATE FUNCTION app.features_in_force(p_plan_id text, p_overrides jsonb) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT coalesce((SELECT p.features FROM public.plans p WHERE p.id = p_plan_id), '{}'::jsonb) || coalesce(p_overrides, '{}'::jsonb)
$$;

-- A feature is on only when it is JSON true: a missing or malformed value denies.
CREATE FUNCTION app.tenant_has_feature(p_tenant_id uuid, p_feature text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT coalesce(
    (SELECT app.features_in_force(t.plan_id, t.feature_overrides) -> p_feature = 'true'::jsonb FROM public.tenants t WHERE t.id = p_tenant_id),
    false)
$$;

-- What GET /billing/entitlements answers, and `tenantry billing status`.
CREATE FUNCTION app.tenant_entitlements(p_tenant_id uuid)
RETURNS TABLE (plan_id text, features jsonb, max_users integer, max_storage_bytes bigint, max_api_requests_month bigint, rate_limit_rps integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT t.plan_id, app.features_in_force(t.plan_id, t.feature_overrides),
         l.max_users, l.max_storage_bytes, l.max_api_requests_month, l.rate_limit_rps
  FROM public.tenants t, app.tenant_limits(t.id) AS l
  WHERE t.id = p_tenant_id
$$;

-- Hasura computed fields, one per feature (scripts/hasura/registry.ts names them): a
-- permission can test `has_feature_api_keys` where no hasura.user exists, on reads too.
-- SECURITY INVOKER on the row the caller could already read.
DO $$
DECLARE
  feature text;
BEGIN
  FOREACH feature IN ARRAY ARRAY['api_keys', 'custom_domains', 'sso', 'audit_export'] LOOP
    EXECUTE format($f$
      CREATE FUNCTION app.tenant_has_feature_%1$s(t public.tenants) RETURNS boolean
      LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp
      AS $body$ SELECT coalesce(app.features_in_force(t.plan_id, t.feature_overrides) -> %2$L = 'true'::jsonb, false) $body$
    $f$, feature, feature);
    EXECUTE format('REVOKE EXECUTE ON FUNCTION app.tenant_has_feature_%s(public.tenants) FROM PUBLIC', feature);
    EXECUTE format('GRANT EXECUTE ON FUNCTION app.tenant_has_feature_%s(public.tenants) TO hasura_app, app_service, platform_admin', feature);
  END LOOP;
END
$$;

-- Features bind where every writer passes: an API key needs `api_keys`, a custom domain
-- (added, or verified) needs `custom_domains`. Rows a tenant already has are kept when it
-- loses a feature; the resolver stops resolving its domains instead. A definer, so the
-- writer needs no access to the tenant's plan. A BEFORE trigger runs ahead of row-level
-- security's WITH CHECK: a service naming another tenant's id would learn whether that
-- plan has the feature before the row is refused (Hasura presets tenant_id from the session).
CREATE FUNCTION app.require_plan_feature() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  feature constant text := TG_ARGV[0];
BEGIN
  IF NOT app.tenant_has_feature(NEW.tenant_id, feature) THEN
    RAISE EXCEPTION 'the tenant''s plan does not include %', feature
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'plan_feature_' || feature,
            HINT = 'Upgrade the tenant''s plan (POST /billing/checkout) or ask the platform for an override.';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER api_keys_plan_feature BEFORE INSERT ON api_keys
  FOR EACH ROW EXECUTE FUNCTION app.require_plan_feature('api_keys');
CREATE TRIGGER tenant_domains_plan_feature BEFORE INSERT ON tenant_domains
  FOR EACH ROW EXECUTE FUNCTION app.require_plan_feature('custom_domains');
CREATE TRIGGER tenant_domains_plan_feature_verify BEFORE UPDATE OF verified_at ON tenant_domains
  FOR EACH ROW WHEN (NEW.verified_at IS NOT NULL AND OLD.verified_at IS NULL)
  EXECUTE FUNCTION app.require_plan_feature('custom_domains');

-- ---------------------------------------------------------------------------
-- The resolver says why a domain does not resolve, and why a tenant is suspended.
-- ---------------------------------------------------------------------------
ALTER TYPE app.tenant_resolution ADD ATTRIBUTE suspension_reason text;
ALTER TYPE app.tenant_resolution ADD ATTRIBUTE custom_domains boolean;

CREATE OR REPLACE FUNCTION app.resolve_tenant_by_id(p_tenant_id uuid) RETURNS SETOF app.tenant_resolution
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT t.id, t.slug, t.status, t.plan_id, p.rate_limit_rps, coalesce(t.max_api_requests_month, p.max_api_requests_month),
         t.suspension_reason, coalesce(app.features_in_force(t.plan_id, t.feature_overrides) -> 'custom_domains' = 'true'::jsonb, false)
  FROM tenants t JOIN plans p ON p.id = t.plan_id
  WHERE t.id = p_tenant_id
$$;
-- Recreated unchanged, so their SELECT * is planned against the type's new attributes.
CREATE OR REPLACE FUNCTION app.resolve_tenant_by_slug(p_slug text) RETURNS SETOF app.tenant_resolution
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$ SELECT * FROM app.resolve_tenant_by_id((SELECT id FROM tenants WHERE slug = p_slug)) $$;
CREATE OR REPLACE FUNCTION app.resolve_tenant_by_domain(p_domain text) RETURNS SETOF app.tenant_resolution
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT * FROM app.resolve_tenant_by_id(
    (SELECT tenant_id FROM tenant_domains WHERE domain = p_domain AND verified_at IS NOT NULL)
  )
$$;

-- ---------------------------------------------------------------------------
-- The billing service's writes to tenants, and its reads across tenants. app_service may
-- not update tenants: each definer moves one thing, audited by the tenants trigger.
-- ---------------------------------------------------------------------------
CREATE FUNCTION app.billing_tenant_by_customer(p_customer_id text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$ SELECT t.id FROM public.tenants t WHERE t.stripe_customer_id = p_customer_id $$;

-- Stores the tenant's customer unless it has one; returns the one that stays.
CREATE FUNCTION app.billing_set_customer(p_tenant_id uuid, p_customer_id text) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  kept text;
BEGIN
  UPDATE public.tenants SET stripe_customer_id = p_customer_id
  WHERE id = p_tenant_id AND stripe_customer_id IS NULL
  RETURNING stripe_customer_id INTO kept;
  IF kept IS NULL THEN
    SELECT t.stripe_customer_id INTO kept FROM public.tenants t WHERE t.id = p_tenant_id;
  END IF;
  RETURN kept;
END
$$;

-- Moves the tenant to a plan; true when it changed. The reason lands in the audit entry.
CREATE FUNCTION app.billing_set_plan(p_tenant_id uuid, p_plan_id text, p_reason text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
  PERFORM set_config('tenantry.reason', coalesce(p_reason, ''), true);
  UPDATE public.tenants SET plan_id = p_plan_id WHERE id = p_tenant_id AND plan_id IS DISTINCT FROM p_plan_id;
  RETURN FOUND;
END
$$;

-- Suspends an active tenant for billing, or lifts a billing suspension; no other
-- suspension is ever lifted here. True when the tenant's status changed.
CREATE FUNCTION app.billing_set_suspended(p_tenant_id uuid, p_suspended boolean, p_reason text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
  PERFORM set_config('tenantry.reason', coalesce(p_reason, ''), true);
  IF p_suspended THEN
    UPDATE public.tenants SET status = 'suspended', suspension_reason = 'billing'
    WHERE id = p_tenant_id AND status = 'active';
  ELSE
    UPDATE public.tenants SET status = 'active'
    WHERE id = p_tenant_id AND status = 'suspended' AND suspension_reason = 'billing';
  END IF;
  RETURN FOUND;
END
$$;

-- Tenants whose billing state a clock may change: a subscription that is not healthy, or
-- a billing suspension. The worker evaluates each inside its tenant. An ended subscription
-- is done with once the tenant has left its plan.
CREATE FUNCTION app.billing_tenants_to_evaluate() RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT s.tenant_id FROM public.tenant_subscriptions s
  JOIN public.tenants t ON t.id = s.tenant_id
  WHERE t.status <> 'deleted'
    AND (s.status IN ('past_due', 'unpaid', 'paused')
         OR (s.status IN ('canceled', 'incomplete_expired') AND t.plan_id = s.plan_id)
         OR (t.status = 'suspended' AND t.suspension_reason = 'billing'))
$$;

-- Usage buckets to report to a Stripe meter: the plan has a meter for the metric, the
-- tenant has a customer, the hour is over and within Stripe's window, and it was not
-- reported yet (one meter event per tenant × metric × hour).
CREATE FUNCTION app.billing_usage_to_report(p_since timestamptz, p_before timestamptz, p_limit integer)
RETURNS TABLE (tenant_id uuid, metric text, period_start timestamptz, quantity bigint, stripe_customer_id text, meter_event_name text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT u.tenant_id, u.metric, u.period_start, u.quantity, t.stripe_customer_id, p.meter_event_name
  FROM public.tenant_usage u
  JOIN public.tenants t ON t.id = u.tenant_id
  JOIN public.plans p ON p.id = t.plan_id
  WHERE p.meter_metric = u.metric AND p.meter_event_name IS NOT NULL AND t.stripe_customer_id IS NOT NULL
    AND u.period_start >= p_since AND u.period_start + interval '1 hour' <= p_before
    AND u.reported_quantity IS NULL AND u.quantity > 0
  ORDER BY u.period_start
  LIMIT p_limit
$$;

CREATE FUNCTION app.billing_record_usage_report(p_tenant_id uuid, p_metric text, p_period_start timestamptz, p_quantity bigint) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  UPDATE public.tenant_usage SET reported_quantity = p_quantity, reported_at = now()
  WHERE tenant_id = p_tenant_id AND metric = p_metric AND period_start = p_period_start
$$;

ALTER FUNCTION app.tenant_has_feature(uuid, text) OWNER TO app_definer;
ALTER FUNCTION app.tenant_entitlements(uuid) OWNER TO app_definer;
ALTER FUNCTION app.require_plan_feature() OWNER TO app_definer;
ALTER FUNCTION app.billing_tenant_by_customer(text) OWNER TO app_definer;
ALTER FUNCTION app.billing_set_customer(uuid, text) OWNER TO app_definer;
ALTER FUNCTION app.billing_set_plan(uuid, text, text) OWNER TO app_definer;
ALTER FUNCTION app.billing_set_suspended(uuid, boolean, text) OWNER TO app_definer;
ALTER FUNCTION app.billing_tenants_to_evaluate() OWNER TO app_definer;
ALTER FUNCTION app.billing_usage_to_report(timestamptz, timestamptz, integer) OWNER TO app_definer;
ALTER FUNCTION app.billing_record_usage_report(uuid, text, timestamptz, bigint) OWNER TO app_definer;

REVOKE EXECUTE ON FUNCTION app.features_in_force(text, jsonb), app.tenant_has_feature(uuid, text), app.tenant_entitlements(uuid),
  app.require_plan_feature(), app.billing_tenant_by_customer(text), app.billing_set_customer(uuid, text),
  app.billing_set_plan(uuid, text, text), app.billing_set_suspended(uuid, boolean, text), app.billing_tenants_to_evaluate(),
  app.billing_usage_to_report(timestamptz, timestamptz, integer), app.billing_record_usage_report(uuid, text, timestamptz, bigint)
  FROM PUBLIC;
-- features_in_force runs inside the computed fields (as hasura_app) and the definers.
GRANT EXECUTE ON FUNCTION app.features_in_force(text, jsonb) TO hasura_app, app_service, platform_admin, app_definer;
GRANT EXECUTE ON FUNCTION app.tenant_has_feature(uuid, text), app.tenant_entitlements(uuid) TO app_service, platform_admin, app_definer;
GRANT EXECUTE ON FUNCTION app.billing_tenant_by_customer(text), app.billing_set_customer(uuid, text),
  app.billing_set_plan(uuid, text, text), app.billing_set_suspended(uuid, boolean, text), app.billing_tenants_to_evaluate(),
  app.billing_usage_to_report(timestamptz, timestamptz, integer), app.billing_record_usage_report(uuid, text, timestamptz, bigint)
  TO app_service, platform_admin;
GRANT SELECT ON tenant_subscriptions, tenant_usage TO app_definer;
GRANT UPDATE (reported_quantity, reported_at) ON tenant_usage TO app_definer;

-- The foundation granted app_service UPDATE on the whole tenants row: any service could
-- have moved its tenant's plan, customer, overrides, limits or status past the definers
-- above (and lifted any suspension). It keeps what the services write themselves (the
-- auth service transfers ownership).
REVOKE UPDATE ON tenants FROM app_service;
GRANT UPDATE (name, owner_user_id, settings, metadata) ON tenants TO app_service;

-- ---------------------------------------------------------------------------
-- The role model: admins read billing (services/shared/src/permissions.ts says the same).
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION app.role_permissions(p_role member_role) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE p_role
    WHEN 'owner' THEN ARRAY['*']
    WHEN 'admin' THEN ARRAY['users:*', 'projects:*', 'settings:read', 'settings:write', 'billing:read']
    WHEN 'member' THEN ARRAY['projects:read', 'projects:write']
    WHEN 'guest' THEN ARRAY['projects:read']
  END
$$;
