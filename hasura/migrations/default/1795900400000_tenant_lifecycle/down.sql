-- Back to 1795900340000: no state machine, deleted tenants writable, owners checked on
-- update and delete only, invitations outside the user limit.

DROP TRIGGER tenant_invitations_user_limit ON tenant_invitations;
REVOKE SELECT ON tenant_invitations FROM app_definer;
CREATE OR REPLACE FUNCTION app.enforce_member_limit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
  user_limit integer;
  member_count integer;
BEGIN
  PERFORM 1 FROM tenants WHERE id = NEW.tenant_id FOR NO KEY UPDATE;
  SELECT l.max_users INTO user_limit FROM app.tenant_limits(NEW.tenant_id) AS l;
  IF user_limit IS NULL THEN
    RETURN NULL;
  END IF;
  -- The new row is already in: it counts.
  SELECT count(*) INTO member_count FROM tenant_members WHERE tenant_id = NEW.tenant_id;
  IF member_count > user_limit THEN
    RAISE EXCEPTION 'tenant has reached its limit of % users', user_limit
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_members_user_limit',
            HINT = 'Remove a member or move the tenant to a plan with more users.';
  END IF;
  RETURN NULL;
END
$$;
DROP FUNCTION app.tenant_seats_taken(uuid);

DROP TRIGGER tenant_members_owner_first ON tenant_members;
CREATE OR REPLACE FUNCTION app.ensure_tenant_keeps_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
  IF OLD.role <> 'owner' THEN
    RETURN NULL;
  END IF;
  PERFORM 1 FROM tenants WHERE id = OLD.tenant_id FOR NO KEY UPDATE;
  IF FOUND AND NOT EXISTS (SELECT 1 FROM tenant_members WHERE tenant_id = OLD.tenant_id AND role = 'owner') THEN
    RAISE EXCEPTION 'a tenant must keep at least one owner'
      USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_members_last_owner',
            HINT = 'Make another member an owner first.';
  END IF;
  RETURN NULL;
END
$$;

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
END
$$;
COMMENT ON FUNCTION app.enable_tenant_isolation(regclass, name) IS
  'ENABLE + FORCE row-level security and the standard per-command policies for app_service and hasura_app. Call it for every table with tenant_id.';

DO $$
DECLARE
  guarded regclass;
BEGIN
  FOR guarded IN
    SELECT t.tgrelid::regclass FROM pg_trigger t
     WHERE t.tgname = 'deleted_tenant_read_only' AND NOT t.tgisinternal
  LOOP
    EXECUTE format('DROP TRIGGER deleted_tenant_read_only ON %s', guarded);
  END LOOP;
END
$$;
DROP FUNCTION app.refuse_deleted_tenant_writes();

DROP FUNCTION app.restore_tenant(uuid, text);
DROP TRIGGER tenants_lifecycle ON tenants;
DROP FUNCTION app.guard_tenant_lifecycle();
