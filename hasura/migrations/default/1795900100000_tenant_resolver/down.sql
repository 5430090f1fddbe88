REVOKE SELECT ON tenant_domains FROM app_definer;
DROP FUNCTION app.resolve_tenant_by_domain(text);
DROP FUNCTION app.resolve_tenant_by_slug(text);
DROP FUNCTION app.resolve_tenant_by_id(uuid);
DROP TYPE app.tenant_resolution;
