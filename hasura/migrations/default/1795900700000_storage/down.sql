-- Back to 1795900600000: no files, no uploads, no single-file limit, no namespace notices,
-- no files or storage permissions, and `s3` free again.

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

DROP TRIGGER tenants_notify_namespaces ON tenants;
DROP FUNCTION app.notify_tenant_namespaces();

CREATE OR REPLACE FUNCTION app.usage_sample(p_metric text, p_hour timestamptz) RETURNS integer
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
-- Samples of the metric that no longer exists.
DELETE FROM tenant_usage WHERE metric = 'storage.bytes';

DROP FUNCTION app.storage_tenant_status(uuid);
DROP FUNCTION app.storage_tenant_ids(uuid, integer);
DROP FUNCTION app.storage_uploads_due(interval, integer);
DROP TABLE file_uploads;
DROP TABLE files;
DROP FUNCTION app.enforce_storage_limits();
DROP FUNCTION app.storage_bytes_committed(uuid);
DROP FUNCTION app.stamp_file_upload_completed();
DROP FUNCTION app.lock_file_upload_name();
DROP FUNCTION app.lock_file_name(uuid, text, text);
DROP FUNCTION app.is_valid_file_name(text);

CREATE OR REPLACE FUNCTION app.is_reserved_slug(slug text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT slug = ANY (ARRAY[
    'admin', 'api', 'app', 'assets', 'auth', 'billing', 'blog', 'cdn', 'console', 'dashboard',
    'default', 'docs', 'edge', 'graphql', 'hasura', 'help', 'internal', 'localhost', 'mail',
    'null', 'platform', 'public', 'root', 'smtp', 'static', 'staff', 'status', 'storage',
    'support', 'system', 'tenantry', 'undefined', 'webhooks', 'www'
  ])
$$;

DROP FUNCTION app.tenant_entitlements(uuid);
DROP FUNCTION app.tenant_limits(uuid);
CREATE FUNCTION app.tenant_limits(p_tenant_id uuid)
RETURNS TABLE (max_users integer, max_storage_bytes bigint, max_api_requests_month bigint, rate_limit_rps integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT coalesce(t.max_users, p.max_users),
         coalesce(t.max_storage_bytes, p.max_storage_bytes),
         coalesce(t.max_api_requests_month, p.max_api_requests_month),
         p.rate_limit_rps
  FROM tenants t JOIN plans p ON p.id = t.plan_id
  WHERE t.id = p_tenant_id
$$;
CREATE FUNCTION app.tenant_entitlements(p_tenant_id uuid)
RETURNS TABLE (plan_id text, features jsonb, max_users integer, max_storage_bytes bigint, max_api_requests_month bigint, rate_limit_rps integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT t.plan_id, app.features_in_force(t.plan_id, t.feature_overrides),
         l.max_users, l.max_storage_bytes, l.max_api_requests_month, l.rate_limit_rps
  FROM public.tenants t, app.tenant_limits(t.id) AS l
  WHERE t.id = p_tenant_id
$$;
ALTER FUNCTION app.tenant_limits(uuid) OWNER TO app_definer;
ALTER FUNCTION app.tenant_entitlements(uuid) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.tenant_limits(uuid), app.tenant_entitlements(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenant_limits(uuid) TO app_service, platform_admin;
GRANT EXECUTE ON FUNCTION app.tenant_entitlements(uuid) TO app_service, platform_admin, app_definer;

ALTER TABLE plans DROP COLUMN max_file_bytes;
