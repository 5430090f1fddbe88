-- SECURITY DEFINER functions and pg_temp (issue 13, point 6).
--
-- A search_path that does not name pg_temp is searched pg_temp FIRST for tables and views.
-- Every definer here ran with `pg_catalog, public`, so a caller that could create a
-- temporary table named audit_log, users or tenant_members had the definer read or write
-- that table instead of ours, with the definer's rights: changes went unaudited, a made-up
-- staff id passed the staff check, the user limit counted nobody. Three layers, each
-- enough on its own against shadowing:
--   1. pg_temp last in every definer's search_path;
--   2. EXECUTE only for the roles that call a function (PostgreSQL grants it to PUBLIC by
--      default, which also let hasura_app fire app.audit_row_change and
--      app.enforce_member_limit from a trigger on a temporary table of its own);
--   3. no TEMPORARY on the database for the roles the application logs in as.
-- The catalog lint (services/shared/src/db/isolation-lint.ts, `npm run db:lint`) keeps it so.

-- 1. pg_temp last. Every definer in our schemas, so none is missed by a list going stale.
DO $$
DECLARE
  definer regprocedure;
BEGIN
  FOR definer IN
    SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE p.prosecdef AND n.nspname IN ('app', 'public')
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, public, pg_temp', definer);
  END LOOP;
END
$$;

-- Nothing calls these (not the services, the edge, Hasura's metadata, scripts or tests).
DROP FUNCTION app.has_session();
DROP FUNCTION app.current_hasura_role();

-- 2. EXECUTE per role. Functions created from now on start private: the global form,
-- because a per-schema default privilege cannot take away what PUBLIC gets by default.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA app, public FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE tenantry_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE app_definer REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- The session readers fill column DEFAULTs (tenant_id, actor, actor_user_id, created_by) for
-- every role that inserts, app_definer included: app.audit_row_change leaves the actor to
-- the defaults. A function in a DEFAULT, CHECK or policy runs with the writer's rights.
GRANT EXECUTE ON FUNCTION app.session(), app.current_tenant_id(), app.current_user_id(), app.current_actor()
  TO hasura_app, app_service, platform_admin, app_definer;
-- CHECK constraints of tenants, tenant_members, api_keys and tenant_domains: every writer,
-- including definers that insert members or tenants on a caller's behalf.
GRANT EXECUTE ON FUNCTION app.is_reserved_slug(text), app.is_valid_slug(text), app.is_valid_permission_list(text[]),
  app.is_normalised_domain(text)
  TO hasura_app, app_service, platform_admin, app_definer;
-- Answers about the caller's own session only.
GRANT EXECUTE ON FUNCTION app.current_member_role() TO hasura_app, app_service, platform_admin;
-- Already granted per role by the migrations that made them, and unchanged here:
-- user_tenants, member_role, tenant_limits (app_service, platform_admin); resolve_tenant_by_*,
-- member_token_state, api_key_by_prefix, invitation_by_token_hash, staff_list_tenants
-- (app_service). Trigger functions need no EXECUTE for the role whose change fires them,
-- and enable_tenant_isolation is for migrations, which run as its owner.

-- 3. No temporary tables for the application's roles: nothing of ours uses them.
DO $$
BEGIN
  EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC, hasura_app, app_service, platform_admin', current_database());
END
$$;
