-- The tenant lifecycle, defined once, here (issue 14, lifecycle bugs 1, 2 and 4).
--
-- 1. The state machine:
--        active ⇄ suspended;  active, suspended → deleted;  deleted → active by restore only;
--        purge deletes the row.
--    Suspending a soft-deleted tenant used to cancel its deletion (app.stamp_tenant_status
--    cleared purge_after, so it left the purge list). A deleted tenant's row is now frozen
--    (only its retention date, purge_after, may move) until app.restore_tenant(), a definer
--    only platform_admin may call, brings it back, audited with its reason. Why a function
--    and not a setting the restore path sets: any role can set any custom setting, a
--    function's EXECUTE is granted to one role.
--    A deleted tenant's data is read-only too: every tenant table gets a trigger refusing
--    writes (app_service, hasura_app and platform_admin alike) while its tenant is deleted.
--    The purge still works: deleting the tenant row cascades, and the cascade runs once the
--    row is gone (and as the table's owner). The audit log is the exception: it records
--    what happens to a deleted tenant, its restore and its purge included.
-- 2. A tenant with members has at least one owner: inserting a tenant's first non-owner
--    member now fails at COMMIT like removing its last owner always did.
-- 4. The user limit counts pending, unexpired invitations: inviting into a full tenant is
--    refused when the invitation is written, not when its link is followed.

-- ---------------------------------------------------------------------------
-- 1. The tenants row: the transitions, and a deleted row frozen.
-- ---------------------------------------------------------------------------
CREATE FUNCTION app.guard_tenant_lifecycle() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
  IF OLD.status <> 'deleted'
     OR (NEW.status = 'deleted'
         AND to_jsonb(NEW) - 'purge_after' - 'updated_at' = to_jsonb(OLD) - 'purge_after' - 'updated_at') THEN
    RETURN NEW;
  END IF;
  -- app.restore_tenant() is the one way back: it runs as app_definer and names the tenant.
  IF NEW.status = 'active' AND current_user = 'app_definer'
     AND current_setting('tenantry.restoring', true) = OLD.id::text
     AND to_jsonb(NEW) - 'status' - 'updated_at' = to_jsonb(OLD) - 'status' - 'updated_at' THEN
    RETURN NEW;
  END IF;
  IF NEW.status IS DISTINCT FROM OLD.status THEN
    RAISE EXCEPTION 'tenant % is deleted: it cannot become % (only `tenantry tenant restore` brings a deleted tenant back, as active)',
      OLD.slug, NEW.status
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tenants_status_transition',
            HINT = 'Restore it with `tenantry tenant restore ' || OLD.slug || ' --reason …`.';
  END IF;
  RAISE EXCEPTION 'tenant % is deleted: its data is read-only until it is restored', OLD.slug
    USING ERRCODE = 'check_violation', CONSTRAINT = 'tenants_deleted_read_only',
          HINT = 'Restore it with `tenantry tenant restore ' || OLD.slug || ' --reason …`, or let it be purged.';
END
$$;
REVOKE EXECUTE ON FUNCTION app.guard_tenant_lifecycle() FROM PUBLIC;
-- Named to sort before tenants_stamp_status: BEFORE triggers fire by name, and the guard
-- must see the row as the writer wrote it.
CREATE TRIGGER tenants_lifecycle BEFORE UPDATE ON tenants
  FOR EACH ROW EXECUTE FUNCTION app.guard_tenant_lifecycle();

-- The explicit way back, audited with its reason. The slug was kept while deleted, so it
-- is still the tenant's; purge_after is cleared by app.stamp_tenant_status.
CREATE FUNCTION app.restore_tenant(p_tenant_id uuid, p_reason text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  current_status tenant_status;
BEGIN
  IF p_reason IS NULL OR btrim(p_reason) = '' THEN
    RAISE EXCEPTION 'restoring a tenant needs a reason'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tenants_restore_reason';
  END IF;
  SELECT t.status INTO current_status FROM public.tenants t WHERE t.id = p_tenant_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'tenant % does not exist (a purged tenant cannot be restored)', p_tenant_id
      USING ERRCODE = 'no_data_found', CONSTRAINT = 'tenants_exists';
  END IF;
  IF current_status <> 'deleted' THEN
    RAISE EXCEPTION 'tenant % is %, not deleted: there is nothing to restore', p_tenant_id, current_status
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tenants_status_transition';
  END IF;
  PERFORM set_config('tenantry.reason', p_reason, true);
  PERFORM set_config('tenantry.restoring', p_tenant_id::text, true);
  UPDATE public.tenants SET status = 'active' WHERE id = p_tenant_id;
  PERFORM set_config('tenantry.restoring', '', true);
  INSERT INTO public.audit_log (tenant_id, db_role, action, target_type, target_id, reason)
  VALUES (p_tenant_id, session_user, 'tenants.restore', 'tenants', p_tenant_id::text, p_reason);
END
$$;
ALTER FUNCTION app.restore_tenant(uuid, text) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.restore_tenant(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.restore_tenant(uuid, text) TO platform_admin;

-- ---------------------------------------------------------------------------
-- 1. A deleted tenant's data is read-only, for every writer.
-- ---------------------------------------------------------------------------
-- BEFORE, because PostgreSQL runs a foreign-key action's statement as the table's owner
-- but fires the AFTER triggers it queues later, as the original writer. SECURITY INVOKER:
-- the writer sees only the tenants row-level security lets it see, so a foreign tenant's
-- row finds no tenant here and row-level security refuses it right after, with its own
-- error (the status of a tenant the writer cannot see never shows).
-- Let through: the table's owner (migrations, and the foreign-key actions, e.g. removing
-- a user who was a member of a deleted tenant), and app_definer, whose vetted functions
-- check the tenant's state themselves or remove a claim a deleted tenant cannot keep.
-- A tenant row already gone is the purge's cascade.
CREATE FUNCTION app.refuse_deleted_tenant_writes() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  tenant_column constant text := coalesce(TG_ARGV[0], 'tenant_id');
  row_tenants uuid[];
  deleted_slug text;
BEGIN
  IF current_user = 'app_definer'
     OR pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END IF;
  row_tenants := ARRAY[
    CASE WHEN TG_OP <> 'DELETE' THEN (to_jsonb(NEW) ->> tenant_column)::uuid END,
    CASE WHEN TG_OP <> 'INSERT' THEN (to_jsonb(OLD) ->> tenant_column)::uuid END
  ];
  SELECT t.slug INTO deleted_slug FROM public.tenants t WHERE t.id = ANY (row_tenants) AND t.status = 'deleted' LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'tenant % is deleted: its data is read-only until it is restored (% %)', deleted_slug, lower(TG_OP), TG_TABLE_NAME
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tenants_deleted_read_only',
            HINT = 'Restore it with `tenantry tenant restore ' || deleted_slug || ' --reason …`, or let it be purged.';
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
REVOKE EXECUTE ON FUNCTION app.refuse_deleted_tenant_writes() FROM PUBLIC;

-- Every tenant table but tenants (guarded above) and the audit log. The isolation lint
-- (services/shared/src/db/isolation-lint.ts) demands this trigger of every tenant table.
DO $$
DECLARE
  tenant_table regclass;
BEGIN
  FOR tenant_table IN
    SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname NOT IN ('tenants', 'audit_log')
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
  LOOP
    EXECUTE format('CREATE TRIGGER deleted_tenant_read_only BEFORE INSERT OR UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION app.refuse_deleted_tenant_writes(''tenant_id'')', tenant_table);
  END LOOP;
END
$$;

-- New tenant tables get the trigger from the same helper that gives them their policies.
CREATE OR REPLACE FUNCTION app.enable_tenant_isolation(target regclass, tenant_column name DEFAULT 'tenant_id')
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  session_tenant constant text :=
    $sql$(SELECT (nullif(current_setting('hasura.user', true), '')::jsonb ->> 'x-hasura-tenant-id')::uuid)$sql$;
  no_session constant text := $sql$(SELECT nullif(current_setting('hasura.user', true), '') IS NULL)$sql$;
  same_tenant text := format('%I = %s', tenant_column, session_tenant);
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);

  EXECUTE format('CREATE POLICY service_select ON %s FOR SELECT TO app_service USING (%s)', target, same_tenant);
  EXECUTE format('CREATE POLICY service_insert ON %s FOR INSERT TO app_service WITH CHECK (%s)', target, same_tenant);
  EXECUTE format('CREATE POLICY service_update ON %s FOR UPDATE TO app_service USING (%s) WITH CHECK (%s)', target, same_tenant, same_tenant);
  EXECUTE format('CREATE POLICY service_delete ON %s FOR DELETE TO app_service USING (%s)', target, same_tenant);

  EXECUTE format('CREATE POLICY hasura_select ON %s FOR SELECT TO hasura_app USING (%s OR %s)', target, no_session, same_tenant);
  EXECUTE format('CREATE POLICY hasura_insert ON %s FOR INSERT TO hasura_app WITH CHECK (%s)', target, same_tenant);
  EXECUTE format('CREATE POLICY hasura_update ON %s FOR UPDATE TO hasura_app USING (%s) WITH CHECK (%s)', target, same_tenant, same_tenant);
  EXECUTE format('CREATE POLICY hasura_delete ON %s FOR DELETE TO hasura_app USING (%s)', target, same_tenant);

  -- The tenants table itself has its lifecycle trigger instead.
  IF (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = target) <> 'tenants' THEN
    EXECUTE format('CREATE TRIGGER deleted_tenant_read_only BEFORE INSERT OR UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION app.refuse_deleted_tenant_writes(%L)', target, tenant_column);
  END IF;
END
$$;
COMMENT ON FUNCTION app.enable_tenant_isolation(regclass, name) IS
  'ENABLE + FORCE row-level security, the standard per-command policies for app_service and hasura_app, and the trigger refusing writes while the tenant is deleted. Call it for every table with tenant_id.';
REVOKE EXECUTE ON FUNCTION app.enable_tenant_isolation(regclass, name) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- 2. An owner always: also when a tenant's first members are inserted.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION app.ensure_tenant_keeps_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  member_tenant uuid;
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.role = 'owner' THEN
      RETURN NULL;
    END IF;
    member_tenant := NEW.tenant_id;
  ELSE
    IF OLD.role <> 'owner' THEN
      RETURN NULL;
    END IF;
    member_tenant := OLD.tenant_id;
  END IF;
  PERFORM 1 FROM public.tenants WHERE id = member_tenant FOR NO KEY UPDATE;
  IF FOUND AND NOT EXISTS (SELECT 1 FROM public.tenant_members WHERE tenant_id = member_tenant AND role = 'owner') THEN
    RAISE EXCEPTION 'a tenant must keep at least one owner'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_members_last_owner',
            HINT = CASE WHEN TG_OP = 'INSERT' THEN 'Add its owner first (in the same transaction).'
                        ELSE 'Make another member an owner first.' END;
  END IF;
  RETURN NULL;
END
$$;
ALTER FUNCTION app.ensure_tenant_keeps_owner() OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.ensure_tenant_keeps_owner() FROM PUBLIC;
-- Deferred: a tenant's owner and its other members may be inserted in any order.
CREATE CONSTRAINT TRIGGER tenant_members_owner_first AFTER INSERT ON tenant_members
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION app.ensure_tenant_keeps_owner();

-- ---------------------------------------------------------------------------
-- 4. The user limit: members plus pending, unexpired invitations.
-- ---------------------------------------------------------------------------
-- Seats taken: members, and invitations still waiting to be accepted. An invitation being
-- accepted is marked accepted before its member row goes in, so it is not counted twice.
CREATE FUNCTION app.tenant_seats_taken(p_tenant_id uuid) RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
  SELECT (SELECT count(*) FROM public.tenant_members m WHERE m.tenant_id = p_tenant_id)::integer
       + (SELECT count(*) FROM public.tenant_invitations i
           WHERE i.tenant_id = p_tenant_id AND i.status = 'pending' AND i.expires_at > now())::integer
$$;
ALTER FUNCTION app.tenant_seats_taken(uuid) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.tenant_seats_taken(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenant_seats_taken(uuid) TO app_service, platform_admin;

CREATE OR REPLACE FUNCTION app.enforce_member_limit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  user_limit integer;
BEGIN
  -- An invitation that has already lapsed takes no seat and is not checked.
  -- Nested: PL/pgSQL would read NEW.status of a tenant_members row in one expression.
  IF TG_TABLE_NAME = 'tenant_invitations' THEN
    IF NEW.status <> 'pending' OR NEW.expires_at <= now() THEN
      RETURN NULL;
    END IF;
  END IF;
  PERFORM 1 FROM public.tenants WHERE id = NEW.tenant_id FOR NO KEY UPDATE;
  SELECT l.max_users INTO user_limit FROM app.tenant_limits(NEW.tenant_id) AS l;
  IF user_limit IS NULL THEN
    RETURN NULL;
  END IF;
  -- The new row is already in: it counts.
  IF app.tenant_seats_taken(NEW.tenant_id) > user_limit THEN
    RAISE EXCEPTION 'tenant has reached its limit of % users (members and pending invitations)', user_limit
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_members_user_limit',
            HINT = 'Remove a member, revoke a pending invitation, or move the tenant to a plan with more users.';
  END IF;
  RETURN NULL;
END
$$;
ALTER FUNCTION app.enforce_member_limit() OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.enforce_member_limit() FROM PUBLIC;

-- AFTER, like the members' trigger: row-level security refuses a foreign tenant first.
-- An UPDATE re-opening or re-sending an invitation takes a seat again.
CREATE TRIGGER tenant_invitations_user_limit AFTER INSERT OR UPDATE OF status, expires_at, tenant_id ON tenant_invitations
  FOR EACH ROW EXECUTE FUNCTION app.enforce_member_limit();
GRANT SELECT ON tenant_invitations TO app_definer;
