-- Quotas and usage (issue 16): what the edge needs to rebuild a month's counter that Redis
-- lost, the usage worker's exactly-once ingestion of the edge's counts, and the quota mails.

-- ---------------------------------------------------------------------------
-- The resolver hands the edge the month's requests already recorded, so a Redis that lost
-- its counters (a restart without persistence) starts from them, never from zero.
-- ---------------------------------------------------------------------------
ALTER TYPE app.tenant_resolution ADD ATTRIBUTE api_requests_month_used bigint;

CREATE OR REPLACE FUNCTION app.resolve_tenant_by_id(p_tenant_id uuid) RETURNS SETOF app.tenant_resolution
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT t.id, t.slug, t.status, t.plan_id, p.rate_limit_rps, coalesce(t.max_api_requests_month, p.max_api_requests_month),
         t.suspension_reason, coalesce(app.features_in_force(t.plan_id, t.feature_overrides) -> 'custom_domains' = 'true'::jsonb, false),
         (SELECT coalesce(sum(u.quantity), 0)::bigint FROM public.tenant_usage u
          WHERE u.tenant_id = t.id AND u.metric = 'api.requests'
            AND u.period_start >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
  FROM tenants t JOIN plans p ON p.id = t.plan_id
  WHERE t.id = p_tenant_id
$$;
-- Recreated unchanged, so their SELECT * is planned against the type's new attribute.
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
-- Ingestion: the edge appends its counts to a Redis stream; the usage worker adds a batch
-- of entries to tenant_usage and moves its offset in the same transaction, so a worker
-- killed mid-flush reads the same entries again and nothing is counted twice or lost.
-- ---------------------------------------------------------------------------
CREATE TABLE usage_ingest_offsets (
  stream text PRIMARY KEY,
  -- The id of the last stream entry whose counts are in tenant_usage.
  last_entry_id text NOT NULL CHECK (last_entry_id ~ '^[0-9]+-[0-9]+$'),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Adds counted quantities (summed metrics such as api.requests) to their hourly buckets,
-- across tenants, in one statement. Tenants that no longer exist are skipped.
CREATE FUNCTION app.usage_add(p_tenant_ids uuid[], p_metrics text[], p_hours timestamptz[], p_quantities bigint[]) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  WITH added AS (
    INSERT INTO public.tenant_usage AS u (tenant_id, metric, period_start, quantity)
    SELECT e.tenant_id, e.metric, date_trunc('hour', e.hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', sum(e.quantity)
    FROM unnest(p_tenant_ids, p_metrics, p_hours, p_quantities) AS e(tenant_id, metric, hour, quantity)
    WHERE EXISTS (SELECT 1 FROM public.tenants t WHERE t.id = e.tenant_id)
    GROUP BY 1, 2, 3
    ON CONFLICT (tenant_id, metric, period_start) DO UPDATE SET quantity = u.quantity + excluded.quantity, updated_at = now()
    RETURNING 1
  )
  SELECT count(*)::integer FROM added
$$;

-- Sets a sampled metric (users.count: "used" is the latest sample, not a sum) for an hour.
CREATE FUNCTION app.usage_sample(p_metric text, p_hour timestamptz) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  sampled integer;
BEGIN
  IF p_metric <> 'users.count' THEN
    RAISE EXCEPTION 'unknown sampled metric %', p_metric USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO public.tenant_usage AS u (tenant_id, metric, period_start, quantity)
  SELECT t.id, p_metric, date_trunc('hour', p_hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
         (SELECT count(*) FROM public.tenant_members m WHERE m.tenant_id = t.id)
  FROM public.tenants t WHERE t.status <> 'deleted'
  ON CONFLICT (tenant_id, metric, period_start) DO UPDATE SET quantity = excluded.quantity, updated_at = now();
  GET DIAGNOSTICS sampled = ROW_COUNT;
  RETURN sampled;
END
$$;

-- ---------------------------------------------------------------------------
-- Quota mails: owners hear once at 80 % and once at 100 % of a month's API requests.
-- ---------------------------------------------------------------------------
CREATE TABLE quota_notices (
  tenant_id uuid NOT NULL DEFAULT app.current_tenant_id() REFERENCES tenants (id) ON DELETE CASCADE,
  metric text NOT NULL CHECK (metric ~ '^[a-z][a-z0-9_.]{0,62}$'),
  -- The first day of the month (UTC) the notice is about.
  month date NOT NULL CHECK (extract(day FROM month) = 1),
  threshold_percent integer NOT NULL CHECK (threshold_percent IN (80, 100)),
  used bigint NOT NULL CHECK (used >= 0),
  quota bigint NOT NULL CHECK (quota > 0),
  sent_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, metric, month, threshold_percent)
);
SELECT app.enable_tenant_isolation('quota_notices');

-- Tenants over a threshold of their monthly API quota without the notice yet; only those of
-- p_tenant_ids when given (the usage worker checks the tenants it just counted).
CREATE FUNCTION app.quota_notices_due(p_month date, p_tenant_ids uuid[] DEFAULT NULL)
RETURNS TABLE (tenant_id uuid, threshold_percent integer, used bigint, quota bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  WITH month_usage AS (
    SELECT u.tenant_id, sum(u.quantity)::bigint AS used
    FROM public.tenant_usage u
    WHERE u.metric = 'api.requests'
      AND (p_tenant_ids IS NULL OR u.tenant_id = ANY (p_tenant_ids))
      AND u.period_start >= p_month::timestamp AT TIME ZONE 'UTC'
      AND u.period_start < (p_month + interval '1 month')::timestamp AT TIME ZONE 'UTC'
    GROUP BY u.tenant_id
  )
  SELECT mu.tenant_id, th.percent, mu.used, l.max_api_requests_month
  FROM month_usage mu
  CROSS JOIN LATERAL app.tenant_limits(mu.tenant_id) AS l
  CROSS JOIN (VALUES (80), (100)) AS th(percent)
  WHERE l.max_api_requests_month IS NOT NULL
    AND mu.used * 100 >= l.max_api_requests_month * th.percent
    AND NOT EXISTS (
      SELECT 1 FROM public.quota_notices n
      WHERE n.tenant_id = mu.tenant_id AND n.metric = 'api.requests' AND n.month = p_month AND n.threshold_percent = th.percent)
$$;

ALTER FUNCTION app.usage_add(uuid[], text[], timestamptz[], bigint[]) OWNER TO app_definer;
ALTER FUNCTION app.usage_sample(text, timestamptz) OWNER TO app_definer;
ALTER FUNCTION app.quota_notices_due(date, uuid[]) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.usage_add(uuid[], text[], timestamptz[], bigint[]), app.usage_sample(text, timestamptz),
  app.quota_notices_due(date, uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.usage_add(uuid[], text[], timestamptz[], bigint[]), app.usage_sample(text, timestamptz),
  app.quota_notices_due(date, uuid[]) TO app_service, platform_admin;
GRANT INSERT, UPDATE (quantity, updated_at) ON tenant_usage TO app_definer;
GRANT SELECT ON quota_notices TO app_definer;

GRANT SELECT, INSERT, UPDATE ON usage_ingest_offsets TO app_service;
GRANT SELECT, INSERT ON quota_notices TO app_service;
-- The foundation's grant covered the tables that existed then: the CLI (purge, export) reads every tenant table.
GRANT SELECT, INSERT, UPDATE, DELETE ON quota_notices, usage_ingest_offsets TO platform_admin;
GRANT SELECT ON quota_notices TO hasura_app;
