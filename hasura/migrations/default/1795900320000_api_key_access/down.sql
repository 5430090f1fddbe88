-- Back to scopes: the column comes back empty (what a key had is gone with it), read_only goes.
DROP FUNCTION app.api_key_by_prefix(text);
DROP TYPE app.api_key_lookup;

DROP TRIGGER api_keys_role_within_creator ON api_keys;
DROP FUNCTION app.ensure_api_key_role_within_creator();

DROP TRIGGER api_keys_audit ON api_keys;
ALTER TABLE api_keys ALTER COLUMN created_by DROP DEFAULT;
ALTER TABLE api_keys DROP COLUMN read_only;
ALTER TABLE api_keys ADD COLUMN scopes text[] NOT NULL DEFAULT '{}' CONSTRAINT api_keys_scopes_valid CHECK (app.is_valid_permission_list(scopes));
GRANT SELECT (scopes) ON api_keys TO hasura_app;
CREATE TRIGGER api_keys_audit AFTER INSERT OR DELETE OR UPDATE OF name, role, scopes, expires_at, revoked_at ON api_keys
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('id');

CREATE TYPE app.api_key_lookup AS (
  id uuid,
  tenant_id uuid,
  tenant_slug text,
  tenant_status tenant_status,
  key_hash text,
  role member_role,
  scopes text[],
  created_by uuid,
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  creator_role member_role
);

CREATE FUNCTION app.api_key_by_prefix(p_prefix text) RETURNS SETOF app.api_key_lookup
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT k.id, k.tenant_id, t.slug, t.status, k.key_hash, k.role, k.scopes, k.created_by, k.expires_at, k.revoked_at, k.last_used_at, m.role
  FROM public.api_keys k
  JOIN public.tenants t ON t.id = k.tenant_id
  LEFT JOIN public.tenant_members m ON m.tenant_id = k.tenant_id AND m.user_id = k.created_by
  WHERE k.prefix = p_prefix
$$;
ALTER FUNCTION app.api_key_by_prefix(text) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.api_key_by_prefix(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.api_key_by_prefix(text) TO app_service;
