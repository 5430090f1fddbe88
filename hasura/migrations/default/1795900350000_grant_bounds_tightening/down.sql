-- Back to the bounds of 1795900310000, 1795900320000 and 1795900330000. NULL elements are
-- not put back: removing them lost nothing a permission check ever matched.

DROP TRIGGER api_keys_role_within_creator ON api_keys;
CREATE OR REPLACE FUNCTION app.ensure_api_key_role_within_creator() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  -- Lowest first: a higher position is a higher role.
  ranks constant member_role[] := ARRAY['guest', 'member', 'admin', 'owner']::member_role[];
  creator_role member_role;
BEGIN
  IF current_user IN ('platform_admin', 'app_definer')
     OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
    RETURN NEW;
  END IF;
  -- A row of another tenant than the session's (or with no session): row-level security,
  -- forced on api_keys, refuses it right after this trigger, with its own error.
  IF NEW.tenant_id IS DISTINCT FROM app.current_tenant_id() THEN
    RETURN NEW;
  END IF;
  IF NEW.created_by IS NULL THEN
    RAISE EXCEPTION 'an API key needs its creator (created_by), a member of its tenant'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'api_keys_role_within_creator';
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
CREATE TRIGGER api_keys_role_within_creator BEFORE INSERT OR UPDATE OF role ON api_keys
  FOR EACH ROW EXECUTE FUNCTION app.ensure_api_key_role_within_creator();

DROP TRIGGER tenant_domains_verified_name ON tenant_domains;
DROP FUNCTION app.keep_verified_domain_name();
REVOKE INSERT (tenant_id, domain, is_primary), UPDATE (is_primary) ON tenant_domains FROM app_service;
GRANT INSERT, UPDATE ON tenant_domains TO app_service;

DROP TRIGGER tenant_invitations_grant_bounds ON tenant_invitations;
CREATE TRIGGER tenant_invitations_grant_bounds BEFORE INSERT OR UPDATE OF role, email ON tenant_invitations
  FOR EACH ROW EXECUTE FUNCTION app.enforce_grant_bounds();

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
  -- fixtures, and ON DELETE CASCADE, which PostgreSQL runs as the table's owner).
  IF current_user IN ('platform_admin', 'app_definer')
     OR pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END IF;

  -- A row outside the session's tenant is row-level security's to refuse (FORCE RLS, and
  -- every policy of a role without BYPASSRLS requires the session tenant): stepping aside
  -- keeps one refusal, RLS's own, for every cross-tenant write. A role that bypasses RLS
  -- gets no such pass.
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
    IF TG_OP = 'UPDATE' AND (NEW.tenant_id <> OLD.tenant_id OR NEW.user_id <> OLD.user_id) THEN
      refusal := 'a membership never moves: tenant_id and user_id do not change';
    ELSIF TG_OP <> 'INSERT' AND OLD.user_id = actor_id THEN
      -- The writer's own row: leaving, stepping down and dropping extras only.
      IF TG_OP = 'UPDATE' THEN
        IF app.role_rank(new_role) > app.role_rank(old_role) THEN
          refusal := format('you cannot raise your own role (%s to %s)', old_role, new_role);
        ELSIF EXISTS (SELECT 1 FROM unnest(NEW.permissions) AS p WHERE p <> ALL (OLD.permissions)) THEN
          refusal := 'you cannot add to your own permissions';
        END IF;
      END IF;
      IF refusal IS NULL THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
      END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
      SELECT coalesce(array_agg(p), '{}') INTO added FROM unnest(NEW.permissions) AS p
       WHERE TG_OP = 'INSERT' OR p <> ALL (OLD.permissions);
    END IF;
  END IF;

  IF refusal IS NULL AND NOT app.member_can(actor_role, actor_extras, 'users:write') THEN
    refusal := CASE WHEN TG_TABLE_NAME = 'tenant_invitations' THEN 'inviting needs users:write'
                    ELSE 'changing another member needs users:write' END;
  END IF;
  IF refusal IS NULL AND old_role IS NOT NULL AND app.role_rank(old_role) > actor_rank THEN
    refusal := format('you cannot change a member whose role (%s) is above your own (%s)', old_role, actor_role);
  END IF;
  IF refusal IS NULL AND new_role IS NOT NULL AND app.role_rank(new_role) > actor_rank THEN
    refusal := format('you cannot give the role %s: it is above your own (%s)', new_role, actor_role);
  END IF;
  IF refusal IS NULL THEN
    FOREACH permission IN ARRAY added LOOP
      IF NOT app.member_can(actor_role, actor_extras, permission) THEN
        refusal := format('you cannot grant %s: you do not hold it', permission);
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

CREATE OR REPLACE FUNCTION app.is_valid_permission_list(permissions text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT coalesce(bool_and(p ~ '^(\*|[a-z][a-z0-9_]*:(\*|[a-z][a-z0-9_]*))$'), true) FROM unnest(permissions) AS p
$$;
