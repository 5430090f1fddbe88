-- Back to 1795900400000: plans bind nothing, no billing definers, no meter reports.

DROP FUNCTION app.billing_record_usage_report(uuid, text, timestamptz, bigint);
DROP FUNCTION app.billing_usage_to_report(timestamptz, timestamptz, integer);
DROP FUNCTION app.billing_tenants_to_evaluate();
DROP FUNCTION app.billing_set_suspended(uuid, boolean, text);
DROP FUNCTION app.billing_set_plan(uuid, text, text);
DROP FUNCTION app.billing_set_customer(uuid, text);
DROP FUNCTION app.billing_tenant_by_customer(text);
REVOKE UPDATE (reported_quantity, reported_at) ON tenant_usage FROM app_definer;
REVOKE UPDATE (name, owner_user_id, settings, metadata) ON tenants FROM app_service;
GRANT UPDATE ON tenants TO app_service;
REVOKE SELECT ON tenant_subscriptions, tenant_usage FROM app_definer;

DROP FUNCTION app.resolve_tenant_by_domain(text);
DROP FUNCTION app.resolve_tenant_by_slug(text);
DROP FUNCTION app.resolve_tenant_by_id(uuid);
ALTER TYPE app.tenant_resolution DROP ATTRIBUTE custom_domains;
ALTER TYPE app.tenant_resolution DROP ATTRIBUTE suspension_reason;
CREATE FUNCTION app.resolve_tenant_by_id(p_tenant_id uuid) RETURNS SETOF app.tenant_resolution
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT t.id, t.slug, t.status, t.plan_id, p.rate_limit_rps, coalesce(t.max_api_requests_month, p.max_api_requests_month)
  FROM tenants t JOIN plans p ON p.id = t.plan_id
  WHERE t.id = p_tenant_id
$$;
CREATE FUNCTION app.resolve_tenant_by_slug(p_slug text) RETURNS SETOF app.tenant_resolution
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$ SELECT * FROM app.resolve_tenant_by_id((SELECT id FROM tenants WHERE slug = p_slug)) $$;
CREATE FUNCTION app.resolve_tenant_by_domain(p_domain text) RETURNS SETOF app.tenant_resolution
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT * FROM app.resolve_tenant_by_id(
    (SELECT tenant_id FROM tenant_domains WHERE domain = p_domain AND verified_at IS NOT NULL)
  )
$$;
ALTER FUNCTION app.resolve_tenant_by_id(uuid) OWNER TO app_definer;
ALTER FUNCTION app.resolve_tenant_by_slug(text) OWNER TO app_definer;
ALTER FUNCTION app.resolve_tenant_by_domain(text) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.resolve_tenant_by_id(uuid), app.resolve_tenant_by_slug(text), app.resolve_tenant_by_domain(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.resolve_tenant_by_id(uuid), app.resolve_tenant_by_slug(text), app.resolve_tenant_by_domain(text) TO app_service;

DROP TRIGGER tenant_domains_plan_feature_verify ON tenant_domains;
DROP TRIGGER tenant_domains_plan_feature ON tenant_domains;
DROP TRIGGER api_keys_plan_feature ON api_keys;
DROP FUNCTION app.require_plan_feature();
DROP FUNCTION app.tenant_has_feature_api_keys(tenants), app.tenant_has_feature_custom_domains(tenants),
  app.tenant_has_feature_sso(tenants), app.tenant_has_feature_audit_export(tenants);
DROP FUNCTION app.tenant_entitlements(uuid);
DROP FUNCTION app.tenant_has_feature(uuid, text);
DROP FUNCTION app.features_in_force(text, jsonb);

DROP TRIGGER tenants_audit_update ON tenants;
DROP TRIGGER tenants_audit ON tenants;
CREATE TRIGGER tenants_audit AFTER INSERT OR UPDATE OR DELETE ON tenants
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('id');
DROP TRIGGER tenant_subscriptions_audit_update ON tenant_subscriptions;
DROP TRIGGER tenant_subscriptions_audit ON tenant_subscriptions;
CREATE TRIGGER tenant_subscriptions_audit AFTER INSERT OR UPDATE OR DELETE ON tenant_subscriptions
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('id');

ALTER TABLE tenant_usage DROP COLUMN reported_at, DROP COLUMN reported_quantity;

DROP TRIGGER stripe_events_notify ON stripe_events;
DROP FUNCTION app.notify_stripe_event();
DROP INDEX stripe_events_object_idx;
DROP INDEX stripe_events_due_idx;
ALTER TABLE stripe_events DROP COLUMN outcome, DROP COLUMN next_attempt_at, DROP COLUMN object_id, DROP COLUMN status;
CREATE INDEX stripe_events_unprocessed_idx ON stripe_events (received_at) WHERE processed_at IS NULL;

ALTER TABLE tenant_subscriptions DROP COLUMN cancellation_reason, DROP COLUMN past_due_since, DROP COLUMN trial_end, DROP COLUMN stripe_price_id;
ALTER TABLE tenants DROP COLUMN feature_overrides, DROP COLUMN stripe_customer_id;
ALTER TABLE plans DROP CONSTRAINT plans_meter_complete, DROP COLUMN meter_metric, DROP COLUMN meter_event_name,
  DROP COLUMN stripe_metered_price_id, DROP COLUMN stripe_product_id;

CREATE OR REPLACE FUNCTION app.role_permissions(p_role member_role) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE p_role
    WHEN 'owner' THEN ARRAY['*']
    WHEN 'admin' THEN ARRAY['users:*', 'projects:*', 'settings:read', 'settings:write']
    WHEN 'member' THEN ARRAY['projects:read', 'projects:write']
    WHEN 'guest' THEN ARRAY['projects:read']
  END
$$;
