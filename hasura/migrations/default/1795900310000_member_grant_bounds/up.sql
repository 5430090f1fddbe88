-- Grant bounds on memberships and invitations (issue 13, points 1 and 2).
--
-- Hasura writes tenant_members straight to the table: a tenant admin wrote {*} into their
-- own permissions, and a member holding the extra grant users:write made herself admin.
-- The rules therefore live in the database, where every writer passes, and read the
-- writer's own membership from the session (`hasura.user`, set by Hasura on mutations and
-- by the services in withTenant):
--   * the writer is a member of the row's tenant (their role and grants come from
--     tenant_members, never from the session's claims);
--   * a membership never moves: tenant_id and user_id do not change;
--   * nobody raises their own role or adds to their own permissions; lowering is fine
--     (an owner steps down to admin when transferring ownership), and so is leaving;
--   * changing, adding or removing someone else needs users:write, and both the old and
--     the new role must be at most the writer's own (owner > admin > member > guest);
--     every permission added must be covered by the writer's own grants;
--   * making, changing, revoking or deleting an invitation needs users:write and a role,
--     before and after, at most the writer's own. One write stays open to any users:write
--     member: marking a pending invitation whose expiry has passed as expired, and nothing
--     else (the auth service does it before re-inviting an address);
--   * a NULL element is no permission: the CHECK on permission lists refuses it, and the
--     trigger compares elements with IS NOT DISTINCT FROM semantics anyway (bool_and skips
--     NULLs, so '{billing:read,NULL}' passed the old CHECK, `p <> ALL (OLD.permissions)`
--     was then NULL for every p, and an admin wrote '{*}' over their own row).
-- platform_admin (the audited CLI), app_definer (the vetted definer functions below) and
-- the tables' owner (migrations, fixtures, cascades of foreign keys) are not bounded.
-- The two paths where no writer is a member yet are definer functions that check their own
-- preconditions: app.create_tenant_with_owner (signup) and app.accept_invitation.

-- ---------------------------------------------------------------------------
-- NULL permission elements.
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
-- The role model of services/auth/src/permissions.ts in SQL; tests/db/role-permissions-sync
-- .test.ts holds the two to the same answers.
-- ---------------------------------------------------------------------------
CREATE FUNCTION app.role_permissions(p_role member_role) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE p_role
    WHEN 'owner' THEN ARRAY['*']
    WHEN 'admin' THEN ARRAY['users:*', 'projects:*', 'settings:read', 'settings:write']
    WHEN 'member' THEN ARRAY['projects:read', 'projects:write']
    WHEN 'guest' THEN ARRAY['projects:read']
  END
$$;

CREATE FUNCTION app.role_rank(p_role member_role) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE p_role WHEN 'owner' THEN 3 WHEN 'admin' THEN 2 WHEN 'member' THEN 1 WHEN 'guest' THEN 0 END $$;

-- grantMatches: `*` covers everything, `users:*` every users: permission (and itself),
-- anything else only itself. A requested `*` is covered by `*` alone.
CREATE FUNCTION app.grant_matches(p_grant text, p_permission text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT p_grant = '*'
      OR p_grant = p_permission
      OR (right(p_grant, 2) = ':*'
          AND starts_with(p_permission, left(p_grant, -1))
          AND length(p_permission) > length(p_grant) - 1)
$$;

CREATE FUNCTION app.grants_cover(p_grants text[], p_permission text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT EXISTS (SELECT 1 FROM unnest(p_grants) AS g WHERE app.grant_matches(g, p_permission)) $$;

-- can(): the role's grants and the member's extras.
CREATE FUNCTION app.member_can(p_role member_role, p_extras text[], p_permission text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT app.grants_cover(app.role_permissions(p_role) || coalesce(p_extras, '{}'), p_permission) $$;

-- ---------------------------------------------------------------------------
-- The session user's own membership in a tenant. A definer because the writer's row may be
-- one RLS or Hasura keeps from them; it answers about the caller's own session only.
-- ---------------------------------------------------------------------------
CREATE FUNCTION app.session_member(p_tenant_id uuid)
RETURNS TABLE (role member_role, permissions text[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT m.role, m.permissions
  FROM public.tenant_members m
  WHERE m.tenant_id = p_tenant_id
    AND m.user_id = (nullif(current_setting('hasura.user', true), '')::jsonb ->> 'x-hasura-user-id')::uuid
$$;

-- Writers no bound applies to: the audited CLI (platform_admin), the vetted definer
-- functions (app_definer), and the owner of the table (migrations, fixtures, and
-- foreign-key actions, which PostgreSQL runs as the table's owner; superusers are members
-- of every role). Every bounding trigger asks this one function.
CREATE FUNCTION app.writer_is_exempt(p_table oid) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT current_user IN ('platform_admin', 'app_definer')
      OR pg_catalog.pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = p_table), 'MEMBER')
$$;

-- ---------------------------------------------------------------------------
-- The trigger. SECURITY INVOKER: current_user is the writer (inside a definer function,
-- that function's owner).
-- ---------------------------------------------------------------------------
CREATE FUNCTION app.enforce_grant_bounds() RETURNS trigger
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

  IF app.writer_is_exempt(TG_RELID) THEN
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

CREATE TRIGGER tenant_members_grant_bounds BEFORE INSERT OR UPDATE OR DELETE ON tenant_members
  FOR EACH ROW EXECUTE FUNCTION app.enforce_grant_bounds();
-- Every write to an invitation is bounded, not only its role: changing its address
-- re-issues it to someone else, and re-opening (new token, new expiry), revoking and
-- deleting it hand out or take away its role as surely as changing the role does.
CREATE TRIGGER tenant_invitations_grant_bounds BEFORE INSERT OR UPDATE OR DELETE ON tenant_invitations
  FOR EACH ROW EXECUTE FUNCTION app.enforce_grant_bounds();

-- ---------------------------------------------------------------------------
-- Signup: a new tenant and its first owner. The tenant is inserted here, so it is new (an
-- existing id or slug fails), and no existing tenant ever gains an owner through this.
-- ---------------------------------------------------------------------------
CREATE FUNCTION app.create_tenant_with_owner(p_tenant_id uuid, p_slug text, p_name text, p_owner_user_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  new_tenant_id uuid;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM public.users u WHERE u.id = p_owner_user_id AND u.disabled_at IS NULL) THEN
    RAISE EXCEPTION 'user % does not exist or is disabled', p_owner_user_id
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'users_active';
  END IF;
  INSERT INTO public.tenants (id, slug, name, owner_user_id)
  VALUES (coalesce(p_tenant_id, gen_random_uuid()), p_slug, p_name, p_owner_user_id)
  RETURNING id INTO new_tenant_id;
  INSERT INTO public.tenant_members (tenant_id, user_id, role) VALUES (new_tenant_id, p_owner_user_id, 'owner');
  RETURN new_tenant_id;
END
$$;

-- ---------------------------------------------------------------------------
-- Accepting an invitation: exactly the role it names, once, while pending and unexpired,
-- in an active tenant, for an active account with the invited address. The invitation row
-- is locked, so two acceptances take turns and the second finds it accepted.
-- ---------------------------------------------------------------------------
CREATE FUNCTION app.accept_invitation(p_token_hash text, p_user_id uuid)
RETURNS TABLE (tenant_id uuid, role member_role)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  invitation record;
  invitee record;
BEGIN
  SELECT i.id, i.tenant_id, i.email, i.role, i.status, i.expires_at, i.invited_by INTO invitation
  FROM public.tenant_invitations i WHERE i.token_hash = p_token_hash
  FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no such invitation' USING ERRCODE = 'no_data_found', CONSTRAINT = 'tenant_invitations_token';
  END IF;
  IF invitation.status <> 'pending' OR invitation.expires_at <= now() THEN
    RAISE EXCEPTION 'the invitation was already accepted, revoked or has expired'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_invitations_pending';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM public.tenants t WHERE t.id = invitation.tenant_id AND t.status = 'active') THEN
    RAISE EXCEPTION 'the tenant is not active' USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'tenants_active';
  END IF;
  SELECT u.email, u.disabled_at INTO invitee FROM public.users u WHERE u.id = p_user_id;
  IF NOT FOUND OR invitee.disabled_at IS NOT NULL THEN
    RAISE EXCEPTION 'user % does not exist or is disabled', p_user_id
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'users_active';
  END IF;
  IF lower(invitee.email) <> lower(invitation.email) THEN
    RAISE EXCEPTION 'the invitation is for another email address'
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'tenant_invitations_email';
  END IF;

  UPDATE public.tenant_invitations SET status = 'accepted', accepted_at = now(), accepted_by = p_user_id
  WHERE id = invitation.id;
  INSERT INTO public.tenant_members (tenant_id, user_id, role, invited_by)
  VALUES (invitation.tenant_id, p_user_id, invitation.role, invitation.invited_by);
  RETURN QUERY SELECT invitation.tenant_id::uuid, invitation.role::member_role;
END
$$;

-- ---------------------------------------------------------------------------
-- Ownership and privileges.
-- ---------------------------------------------------------------------------
ALTER FUNCTION app.session_member(uuid) OWNER TO app_definer;
ALTER FUNCTION app.create_tenant_with_owner(uuid, text, text, uuid) OWNER TO app_definer;
ALTER FUNCTION app.accept_invitation(text, uuid) OWNER TO app_definer;

REVOKE EXECUTE ON FUNCTION app.writer_is_exempt(oid),
  app.role_permissions(member_role), app.role_rank(member_role), app.grant_matches(text, text),
  app.grants_cover(text[], text), app.member_can(member_role, text[], text), app.session_member(uuid),
  app.enforce_grant_bounds(), app.create_tenant_with_owner(uuid, text, text, uuid), app.accept_invitation(text, uuid)
  FROM PUBLIC;
-- The trigger runs as the writer and calls these; the role model is also the services' to ask.
GRANT EXECUTE ON FUNCTION
  app.role_permissions(member_role), app.role_rank(member_role), app.grant_matches(text, text),
  app.grants_cover(text[], text), app.member_can(member_role, text[], text), app.session_member(uuid)
  TO hasura_app, app_service;
GRANT EXECUTE ON FUNCTION app.create_tenant_with_owner(uuid, text, text, uuid), app.accept_invitation(text, uuid) TO app_service;
-- Every bounding trigger asks it first, as whoever writes.
GRANT EXECUTE ON FUNCTION app.writer_is_exempt(oid) TO hasura_app, app_service, platform_admin, app_definer;

-- What the two definer functions touch.
GRANT INSERT ON tenants, tenant_members TO app_definer;
GRANT UPDATE (status, accepted_at, accepted_by) ON tenant_invitations TO app_definer;
GRANT SELECT (email) ON users TO app_definer;
