-- What the edge needs to know about a tenant, found by id, slug or verified custom
-- domain: one indexed query each. SECURITY DEFINER because the resolver reads before
-- any tenant context exists; only app_service may call them.
CREATE TYPE app.tenant_resolution AS (
  id uuid,
  slug text,
  status tenant_status,
  plan_id text,
  rate_limit_rps integer,
  max_api_requests_month bigint
);

CREATE FUNCTION app.resolve_tenant_by_id(p_tenant_id uuid) RETURNS SETOF app.tenant_resolution
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
  SELECT t.id, t.slug, t.status, t.plan_id, p.rate_limit_rps, coalesce(t.max_api_requests_month, p.max_api_requests_month)
  FROM tenants t JOIN plans p ON p.id = t.plan_id
  WHERE t.id = p_tenant_id
$$;

CREATE FUNCTION app.resolve_tenant_by_slug(p_slug text) RETURNS SETOF app.tenant_resolution
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$ SELECT * FROM app.resolve_tenant_by_id((SELECT id FROM tenants WHERE slug = p_slug)) $$;

-- A domain resolves only once it is verified.
CREATE FUNCTION app.resolve_tenant_by_domain(p_domain text) RETURNS SETOF app.tenant_resolution
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
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
GRANT SELECT ON tenant_domains TO app_definer;
