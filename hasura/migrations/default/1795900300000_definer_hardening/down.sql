-- Back to the function privileges of 1795900200000, shadowing included: only for rolling
-- back. TEMPORARY on the database stays revoked: granting it is bootstrap's business
-- (services/shared/src/db/bootstrap.ts), which no longer does, and would take it again.
ALTER DEFAULT PRIVILEGES FOR ROLE app_definer GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE tenantry_owner GRANT EXECUTE ON FUNCTIONS TO PUBLIC;

REVOKE EXECUTE ON FUNCTION app.session(), app.current_tenant_id(), app.current_user_id(), app.current_actor(),
  app.is_reserved_slug(text), app.is_valid_slug(text), app.is_valid_permission_list(text[]), app.is_normalised_domain(text)
  FROM hasura_app, app_service, platform_admin, app_definer;
REVOKE EXECUTE ON FUNCTION app.current_member_role() FROM hasura_app, app_service, platform_admin;
GRANT EXECUTE ON FUNCTION
  app.session(), app.current_tenant_id(), app.current_user_id(), app.current_actor(), app.touch_updated_at(),
  app.is_reserved_slug(text), app.is_valid_slug(text), app.stamp_tenant_status(), app.is_valid_permission_list(text[]),
  app.enforce_member_limit(), app.ensure_tenant_keeps_owner(), app.current_member_role(), app.is_normalised_domain(text),
  app.audit_row_change(), app.stamp_member_token_validity()
  TO PUBLIC;

CREATE FUNCTION app.has_session() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT app.session() IS NOT NULL $$;

CREATE FUNCTION app.current_hasura_role() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT app.session() ->> 'x-hasura-role' $$;

ALTER FUNCTION app.tenant_limits(uuid) SET search_path = pg_catalog, public;
ALTER FUNCTION app.enforce_member_limit() SET search_path = pg_catalog, public;
ALTER FUNCTION app.ensure_tenant_keeps_owner() SET search_path = pg_catalog, public;
ALTER FUNCTION app.member_role(uuid, uuid) SET search_path = pg_catalog, public;
ALTER FUNCTION app.current_member_role() SET search_path = pg_catalog, public;
ALTER FUNCTION app.user_tenants(uuid) SET search_path = pg_catalog, public;
ALTER FUNCTION app.audit_row_change() SET search_path = pg_catalog, public;
ALTER FUNCTION app.resolve_tenant_by_id(uuid) SET search_path = pg_catalog, public;
ALTER FUNCTION app.resolve_tenant_by_slug(text) SET search_path = pg_catalog, public;
ALTER FUNCTION app.resolve_tenant_by_domain(text) SET search_path = pg_catalog, public;
ALTER FUNCTION app.member_token_state(uuid, uuid) SET search_path = pg_catalog, public;
ALTER FUNCTION app.api_key_by_prefix(text) SET search_path = pg_catalog, public;
ALTER FUNCTION app.invitation_by_token_hash(text) SET search_path = pg_catalog, public;
ALTER FUNCTION app.staff_list_tenants(uuid, text, integer) SET search_path = pg_catalog, public;
