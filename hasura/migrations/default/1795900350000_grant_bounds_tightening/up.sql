-- Grant bounds, tightened after an attack review of the issue-13 fixes (points 1, 3 and 7).
--
-- 1. NULL elements: app.is_valid_permission_list used bool_and, which skips NULLs, so
--    '{billing:read,NULL}' passed the CHECK; the trigger's `p <> ALL (OLD.permissions)` is
--    then NULL for every p, nothing counted as added, and an admin wrote '{*}' over their
--    own row in a second UPDATE. A NULL element is now invalid, existing ones are removed,
--    and the trigger compares with IS NOT DISTINCT FROM semantics anyway.
-- 2. Invitations: the bounds fired only on UPDATE OF role, email, so an admin re-opened
--    (new token, new expiry) or revoked an owner invitation. They now hold for every UPDATE
--    and DELETE. One write stays open to any users:write member: marking a pending
--    invitation whose expiry has passed as expired, and nothing else (the auth service does
--    it before re-inviting an address).
-- 3. tenant_domains: app_service kept table-wide INSERT and UPDATE, so a session renamed a
--    verified domain to another tenant's name (keeping verified_at, and the rival trigger
--    deleted the real owner's claim) or inserted a row already verified. No service writes
--    domains (the CLI is platform_admin): app_service gets what hasura_app has, and the
--    name of a verified domain never changes except by the platform.
-- 4. API keys: the role was bounded by the NAMED creator, never checked to be the writer:
--    an admin inserted an owner key naming the owner as created_by. The creator is now the
--    session's user, and a key's creator, prefix and secret never change afterwards.

-- ---------------------------------------------------------------------------
-- 1. NULL permissions.
-- ---------------------------------------------------------------------------
-- tenant_members forces row-level security on its owner too, and no policy names the
-- migration's role: without lifting FORCE the data fix would see no rows.
ALTER TABLE tenant_members NO FORCE ROW LEVEL SECURITY;
UPDATE tenant_members SET permissions = array_remove(permissions, NULL)
WHERE EXISTS (SELECT 1 FROM unnest(permissions) AS p WHERE p IS NULL);
ALTER TABLE tenant_members FORCE ROW LEVEL SECURITY;

-- A one-dimensional list of well-formed names; a NULL element is no permission.
CREATE OR REPLACE FUNCTION app.is_valid_permission_list(permissions text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT coalesce(array_ndims(permissions), 1) = 1
     AND coalesce(bool_and(p IS NOT NULL AND p ~ '^(\*|[a-z][a-z0-9_]*:(\*|[a-z][a-z0-9_]*))$'), true)
  FROM unnest(permissions) AS p
$$;

-- ---------------------------------------------------------------------------
-- 1 and 2. The trigger: NULL-safe comparisons; invitations bounded on every write.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION app.enforce_grant_bounds() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  constraint_name constant text := TG_TABLE_NAME || '_grant_bounds';
  session jsonb := nullif(current_setting('hasura.user', true), '')::jsonb;
  session_tenant uuid := (session ->> 'x-hasura-tenant-id')::uuid;
  actor_id uuid := (session ->> 'x-hasura-user-id')::uuid;
  row_tenants uuid[];
  actor_role member_role;
  actor_extras text[];
  actor_rank integer;
  new_role member_role;
  old_role member_role;
  added text[] := '{}';
  permission text;
  refusal text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    row_tenants := ARRAY[NEW.tenant_id];
  ELSIF TG_OP = 'UPDATE' THEN
    row_tenants := ARRAY[OLD.tenant_id, NEW.tenant_id];
  ELSE
    row_tenants := ARRAY[OLD.tenant_id];
  END IF;

  -- The audited CLI, the vetted definer functions, and the owner of the table (migrations,
  -- fixtures, and foreign-key actions, which PostgreSQL runs as the table's owner).
  IF current_user IN ('platform_admin', 'app_definer')
     OR pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END IF;

  -- A row outside the session's tenant is row-level security's to refuse (FORCE RLS, and
  -- every policy of a role without BYPASSRLS requires the session tenant). A role that
  -- bypasses RLS gets no such pass.
  IF (session_tenant IS NULL OR EXISTS (SELECT 1 FROM unnest(row_tenants) AS t WHERE t IS DISTINCT FROM session_tenant))
     AND NOT (SELECT r.rolbypassrls FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END IF;

  IF session ? 'x-hasura-api-key-id' THEN
    refusal := 'an API key cannot change memberships or invitations';
  ELSIF actor_id IS NULL THEN
    refusal := 'no acting user: hasura.user names no x-hasura-user-id';
  ELSE
    SELECT m.role, m.permissions INTO actor_role, actor_extras FROM app.session_member(row_tenants[1]) AS m;
    IF NOT FOUND THEN
      refusal := format('user %s is not a member of tenant %s', actor_id, row_tenants[1]);
    END IF;
  END IF;
  IF refusal IS NOT NULL THEN
    RAISE EXCEPTION '%', refusal USING ERRCODE = 'insufficient_privilege', CONSTRAINT = constraint_name;
  END IF;
  actor_rank := app.role_rank(actor_role);

  IF TG_OP <> 'INSERT' THEN old_role := OLD.role; END IF;
  IF TG_OP <> 'DELETE' THEN new_role := NEW.role; END IF;

  IF TG_TABLE_NAME = 'tenant_members' THEN
    IF TG_OP = 'UPDATE' AND (NEW.tenant_id IS DISTINCT FROM OLD.tenant_id OR NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
      refusal := 'a membership never moves: tenant_id and user_id do not change';
    ELSIF TG_OP <> 'INSERT' AND OLD.user_id = actor_id THEN
      -- The writer's own row: leaving, stepping down and dropping extras only.
      IF TG_OP = 'UPDATE' THEN
        IF app.role_rank(new_role) > app.role_rank(old_role) THEN
          refusal := format('you cannot raise your own role (%s to %s)', old_role, new_role);
        ELSIF EXISTS (SELECT 1 FROM unnest(NEW.permissions) AS p
                      WHERE NOT EXISTS (SELECT 1 FROM unnest(OLD.permissions) AS o WHERE o IS NOT DISTINCT FROM p)) THEN
          refusal := 'you cannot add to your own permissions';
        END IF;
      END IF;
      IF refusal IS NULL THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
      END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
      -- Added: every element of the new list the old one lacks, NULL included (a NULL is
      -- covered by no grant, so it is refused below even if the CHECK ever let one in).
      SELECT coalesce(array_agg(p), '{}') INTO added FROM unnest(NEW.permissions) AS p
       WHERE TG_OP = 'INSERT'
          OR NOT EXISTS (SELECT 1 FROM unnest(OLD.permissions) AS o WHERE o IS NOT DISTINCT FROM p);
    END IF;
  ELSIF TG_OP = 'UPDATE'
        AND OLD.status = 'pending' AND NEW.status = 'expired' AND OLD.expires_at <= now()
        AND to_jsonb(NEW) - 'status' - 'updated_at' = to_jsonb(OLD) - 'status' - 'updated_at' THEN
    -- Marking a lapsed invitation expired records what already holds: no role is handed
    -- out or taken away, so any users:write member may (the re-invite path does).
    old_role := NULL;
    new_role := NULL;
  END IF;

  IF refusal IS NULL AND NOT app.member_can(actor_role, actor_extras, 'users:write') THEN
    refusal := CASE WHEN TG_TABLE_NAME = 'tenant_invitations' THEN 'changing invitations needs users:write'
                    ELSE 'changing another member needs users:write' END;
  END IF;
  IF refusal IS NULL AND old_role IS NOT NULL AND app.role_rank(old_role) > actor_rank THEN
    refusal := CASE WHEN TG_TABLE_NAME = 'tenant_invitations'
                    THEN format('you cannot change an invitation whose role (%s) is above your own (%s)', old_role, actor_role)
                    ELSE format('you cannot change a member whose role (%s) is above your own (%s)', old_role, actor_role) END;
  END IF;
  IF refusal IS NULL AND new_role IS NOT NULL AND app.role_rank(new_role) > actor_rank THEN
    refusal := format('you cannot give the role %s: it is above your own (%s)', new_role, actor_role);
  END IF;
  IF refusal IS NULL THEN
    FOREACH permission IN ARRAY added LOOP
      IF permission IS NULL OR NOT app.member_can(actor_role, actor_extras, permission) THEN
        refusal := format('you cannot grant %s: you do not hold it', coalesce(permission, 'NULL'));
        EXIT;
      END IF;
    END LOOP;
  END IF;

  IF refusal IS NOT NULL THEN
    RAISE EXCEPTION '%', refusal USING ERRCODE = 'insufficient_privilege', CONSTRAINT = constraint_name;
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;

-- Re-opening (new token, new expiry), revoking and deleting an invitation hand out or take
-- away its role as surely as changing the role does.
DROP TRIGGER tenant_invitations_grant_bounds ON tenant_invitations;
CREATE TRIGGER tenant_invitations_grant_bounds BEFORE INSERT OR UPDATE OR DELETE ON tenant_invitations
  FOR EACH ROW EXECUTE FUNCTION app.enforce_grant_bounds();

-- ---------------------------------------------------------------------------
-- 3. tenant_domains: the columns a tenant chooses, nothing more, for app_service too.
-- ---------------------------------------------------------------------------
REVOKE INSERT, UPDATE ON tenant_domains FROM app_service;
GRANT INSERT (tenant_id, domain, is_primary), UPDATE (is_primary) ON tenant_domains TO app_service;

-- No application role may update `domain` now; this holds whatever is granted later:
-- verification belongs to the name it was checked for.
CREATE FUNCTION app.keep_verified_domain_name() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
  IF current_user <> 'platform_admin'
     AND NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN
    RAISE EXCEPTION 'a verified domain keeps its name (% cannot become %): claim the new name and verify it', OLD.domain, NEW.domain
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'tenant_domains_verified_name';
  END IF;
  RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION app.keep_verified_domain_name() FROM PUBLIC;
CREATE TRIGGER tenant_domains_verified_name BEFORE UPDATE OF domain ON tenant_domains
  FOR EACH ROW WHEN (OLD.verified_at IS NOT NULL AND NEW.domain IS DISTINCT FROM OLD.domain)
  EXECUTE FUNCTION app.keep_verified_domain_name();

-- ---------------------------------------------------------------------------
-- 4. API keys: the creator is the writer.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION app.ensure_api_key_role_within_creator() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  -- Lowest first: a higher position is a higher role.
  ranks constant member_role[] := ARRAY['guest', 'member', 'admin', 'owner']::member_role[];
  creator_role member_role;
BEGIN
  -- The platform's audited paths, superusers, and the table's owner (migrations and the
  -- ON DELETE SET NULL of created_by, which PostgreSQL runs as the owner).
  IF current_user IN ('platform_admin', 'app_definer')
     OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
     OR pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN
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
  IF array_position(ranks, NEW.role) > array_position(ranks, creator_role) THEN
    RAISE EXCEPTION 'an API key''s role (%) cannot be above its creator''s (%)', NEW.role, creator_role
      USING ERRCODE = 'check_violation', CONSTRAINT = 'api_keys_role_within_creator';
  END IF;
  RETURN NEW;
END
$$;
DROP TRIGGER api_keys_role_within_creator ON api_keys;
CREATE TRIGGER api_keys_role_within_creator BEFORE INSERT OR UPDATE OF role, created_by, key_hash, prefix ON api_keys
  FOR EACH ROW EXECUTE FUNCTION app.ensure_api_key_role_within_creator();
