-- Auth service: one-time mailed tokens (user-level, no tenant) and the SECURITY DEFINER
-- lookups the service needs before it knows a tenant: an API key by its public prefix and
-- an invitation by its token hash. Both return only what the caller already proves to
-- hold (the key's prefix, the invitation's secret), and only app_service may call them.

-- Email verification and password reset links. A user's own rows, not tenant data:
-- no tenant_id, no RLS, reached by app_service only. Only the hash of the token is kept.
CREATE TABLE auth_email_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  purpose text NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
  token_hash text NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT auth_email_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX auth_email_tokens_user_id_idx ON auth_email_tokens (user_id, purpose);
GRANT SELECT, INSERT, UPDATE, DELETE ON auth_email_tokens TO app_service, platform_admin;

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
  -- The creator's current role in the key's tenant (NULL: no longer a member).
  creator_role member_role
);

CREATE FUNCTION app.api_key_by_prefix(p_prefix text) RETURNS SETOF app.api_key_lookup
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
  SELECT k.id, k.tenant_id, t.slug, t.status, k.key_hash, k.role, k.scopes, k.created_by, k.expires_at, k.revoked_at, k.last_used_at, m.role
  FROM api_keys k
  JOIN tenants t ON t.id = k.tenant_id
  LEFT JOIN tenant_members m ON m.tenant_id = k.tenant_id AND m.user_id = k.created_by
  WHERE k.prefix = p_prefix
$$;

CREATE TYPE app.invitation_lookup AS (
  id uuid,
  tenant_id uuid,
  tenant_status tenant_status,
  email text,
  role member_role,
  status invitation_status,
  expires_at timestamptz
);

CREATE FUNCTION app.invitation_by_token_hash(p_token_hash text) RETURNS SETOF app.invitation_lookup
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
  SELECT i.id, i.tenant_id, t.status, i.email, i.role, i.status, i.expires_at
  FROM tenant_invitations i JOIN tenants t ON t.id = i.tenant_id
  WHERE i.token_hash = p_token_hash
$$;

-- Platform staff (users.is_staff) list tenants across the platform. The check and the
-- audit entry live inside the function, so no caller can skip either.
CREATE FUNCTION app.staff_list_tenants(p_staff_user_id uuid, p_search text, p_limit integer)
RETURNS TABLE (id uuid, slug text, name text, status tenant_status, plan_id text, member_count bigint, created_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
#variable_conflict use_column
BEGIN
  IF NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p_staff_user_id AND u.is_staff AND u.disabled_at IS NULL) THEN
    RAISE EXCEPTION 'user % is not platform staff', p_staff_user_id USING ERRCODE = 'insufficient_privilege';
  END IF;
  INSERT INTO audit_log (tenant_id, actor, actor_user_id, db_role, action, target_type, target_id, reason)
  VALUES (NULL, 'staff:' || p_staff_user_id, p_staff_user_id, session_user, 'staff.list_tenants', 'tenants', NULL, nullif(p_search, ''));
  RETURN QUERY
    SELECT t.id, t.slug, t.name, t.status, t.plan_id,
           (SELECT count(*) FROM tenant_members m WHERE m.tenant_id = t.id), t.created_at
    FROM tenants t
    WHERE p_search IS NULL OR strpos(t.slug, lower(p_search)) > 0 OR strpos(lower(t.name), lower(p_search)) > 0
    ORDER BY t.created_at DESC, t.id
    LIMIT least(greatest(p_limit, 1), 500);
END
$$;

ALTER FUNCTION app.staff_list_tenants(uuid, text, integer) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.staff_list_tenants(uuid, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.staff_list_tenants(uuid, text, integer) TO app_service;
GRANT SELECT (id, is_staff, disabled_at) ON users TO app_definer;

ALTER FUNCTION app.api_key_by_prefix(text) OWNER TO app_definer;
ALTER FUNCTION app.invitation_by_token_hash(text) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.api_key_by_prefix(text), app.invitation_by_token_hash(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.api_key_by_prefix(text), app.invitation_by_token_hash(text) TO app_service;
GRANT SELECT ON api_keys, tenant_invitations TO app_definer;
