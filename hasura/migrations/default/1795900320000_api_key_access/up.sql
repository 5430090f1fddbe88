-- API keys: what a key may do is what Hasura enforces (issue 13, point 3).
--
-- Scopes were free-form permission names that rode in the token as
-- x-hasura-api-key-scopes and that nothing read: a key "limited" to projects:read deleted
-- projects through GraphQL. Hasura can only enforce roles, and a role per combination of
-- scopes is not a design. A key now has a role (never above its creator's current one) and
-- a read-only flag: a read-only key's token carries the read-only twin of that role
-- (`<hasura role>_readonly`), which the generated metadata lets select and never write.

-- The audit trigger names the columns it watches: it goes while scopes goes.
DROP TRIGGER api_keys_audit ON api_keys;
ALTER TABLE api_keys DROP COLUMN scopes;
ALTER TABLE api_keys ADD COLUMN read_only boolean NOT NULL DEFAULT false;
-- The key's creator is the writer, unless a platform path names someone else.
ALTER TABLE api_keys ALTER COLUMN created_by SET DEFAULT app.current_user_id();
CREATE TRIGGER api_keys_audit AFTER INSERT OR DELETE OR UPDATE OF name, role, read_only, expires_at, revoked_at ON api_keys
  FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('id');
GRANT SELECT (read_only) ON api_keys TO hasura_app;

-- A key's role is never above its creator's current role in the key's tenant, whoever
-- writes the row: the auth service checks it too, this holds for every other writer.
-- SECURITY INVOKER: the membership is read with the writer's own rights (app_service in
-- the tenant's context sees its tenant's members and no other's), so a writer that cannot
-- see the creator as a member of the key's tenant cannot write the key. The platform's
-- audited paths (platform_admin: the CLI; app_definer: definer functions), superusers and
-- the table's owner are exempt: they are the ones that repair what this refuses.
-- The role is bounded by the creator, so the creator must be the writer (otherwise an admin
-- inserts an owner key naming the owner as created_by): on INSERT created_by is the
-- session's user, and a key's creator, prefix and secret never change afterwards.
CREATE FUNCTION app.ensure_api_key_role_within_creator() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  creator_role member_role;
BEGIN
  -- The platform's audited paths and the table's owner (migrations and the ON DELETE SET
  -- NULL of created_by, which PostgreSQL runs as the owner).
  IF app.writer_is_exempt(TG_RELID) THEN
    RETURN NEW;
  END IF;
  -- A row of another tenant than the session's (or with no session): row-level security,
  -- forced on api_keys, refuses it right after this trigger, with its own error.
  IF NEW.tenant_id IS DISTINCT FROM app.current_tenant_id() THEN
    RETURN NEW;
  END IF;
  -- A key's secret and the creator it acts for are fixed when it is made: swapping either
  -- would hand someone else's key, with its role, to the writer.
  IF TG_OP = 'UPDATE' AND (NEW.created_by IS DISTINCT FROM OLD.created_by
                           OR NEW.key_hash IS DISTINCT FROM OLD.key_hash
                           OR NEW.prefix IS DISTINCT FROM OLD.prefix) THEN
    RAISE EXCEPTION 'an API key''s creator, prefix and secret never change: revoke it and create another'
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'api_keys_creator_is_writer';
  END IF;
  IF NEW.created_by IS NULL THEN
    RAISE EXCEPTION 'an API key needs its creator (created_by), a member of its tenant'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'api_keys_role_within_creator';
  END IF;
  IF TG_OP = 'INSERT' AND NEW.created_by IS DISTINCT FROM app.current_user_id() THEN
    RAISE EXCEPTION 'an API key''s creator is the user who writes it (created_by %, session user %)', NEW.created_by, coalesce(app.current_user_id()::text, 'none')
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'api_keys_creator_is_writer';
  END IF;
  SELECT m.role INTO creator_role FROM public.tenant_members m WHERE m.tenant_id = NEW.tenant_id AND m.user_id = NEW.created_by;
  IF creator_role IS NULL THEN
    RAISE EXCEPTION 'the creator of an API key must be a member of its tenant'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'api_keys_role_within_creator';
  END IF;
  IF app.role_rank(NEW.role) > app.role_rank(creator_role) THEN
    RAISE EXCEPTION 'an API key''s role (%) cannot be above its creator''s (%)', NEW.role, creator_role
      USING ERRCODE = 'check_violation', CONSTRAINT = 'api_keys_role_within_creator';
  END IF;
  RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION app.ensure_api_key_role_within_creator() FROM PUBLIC;
CREATE TRIGGER api_keys_role_within_creator BEFORE INSERT OR UPDATE OF role, created_by, key_hash, prefix ON api_keys
  FOR EACH ROW EXECUTE FUNCTION app.ensure_api_key_role_within_creator();

-- The exchange's lookup: read_only instead of scopes, and the creator's tokens_valid_after,
-- so the token the exchange signs is never taken for one older than the creator's last
-- change (the edge refuses iat <= floor(tokens_valid_after)).
DROP FUNCTION app.api_key_by_prefix(text);
DROP TYPE app.api_key_lookup;
CREATE TYPE app.api_key_lookup AS (
  id uuid,
  tenant_id uuid,
  tenant_slug text,
  tenant_status tenant_status,
  key_hash text,
  role member_role,
  read_only boolean,
  created_by uuid,
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  -- The creator's current role in the key's tenant (NULL: no longer a member).
  creator_role member_role,
  creator_tokens_valid_after timestamptz
);

CREATE FUNCTION app.api_key_by_prefix(p_prefix text) RETURNS SETOF app.api_key_lookup
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT k.id, k.tenant_id, t.slug, t.status, k.key_hash, k.role, k.read_only, k.created_by, k.expires_at, k.revoked_at, k.last_used_at,
         m.role, m.tokens_valid_after
  FROM public.api_keys k
  JOIN public.tenants t ON t.id = k.tenant_id
  LEFT JOIN public.tenant_members m ON m.tenant_id = k.tenant_id AND m.user_id = k.created_by
  WHERE k.prefix = p_prefix
$$;
ALTER FUNCTION app.api_key_by_prefix(text) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.api_key_by_prefix(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.api_key_by_prefix(text) TO app_service;
