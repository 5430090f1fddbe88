-- Back to 1795900500000: no ingestion offsets, no quota notices, no month's usage in the resolution.

REVOKE SELECT ON quota_notices FROM hasura_app;
DROP FUNCTION app.quota_notices_due(date, uuid[]);
DROP TABLE quota_notices;
DROP FUNCTION app.usage_sample(text, timestamptz);
DROP FUNCTION app.usage_add(uuid[], text[], timestamptz[], bigint[]);
REVOKE INSERT, UPDATE (quantity, updated_at) ON tenant_usage FROM app_definer;
DROP TABLE usage_ingest_offsets;

DROP FUNCTION app.resolve_tenant_by_domain(text);
DROP FUNCTION app.resolve_tenant_by_slug(text);
DROP FUNCTION app.resolve_tenant_by_id(uuid);
ALTER TYPE app.tenant_resolution DROP ATTRIBUTE api_requests_month_used;
CREATE FUNCTION app.resolve_tenant_by_id(p_tenant_id uuid) RETURNS SETOF app.tenant_resolution
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT t.id, t.slug, t.status, t.plan_id, p.rate_limit_rps, coalesce(t.max_api_requests_month, p.max_api_requests_month),
         t.suspension_reason, coalesce(app.features_in_force(t.plan_id, t.feature_overrides) -> 'custom_domains' = 'true'::jsonb, false)
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
