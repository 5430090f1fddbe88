REVOKE SELECT (id, is_staff, disabled_at) ON users FROM app_definer;
DROP FUNCTION app.staff_list_tenants(uuid, text, integer);
REVOKE SELECT ON api_keys, tenant_invitations FROM app_definer;
DROP FUNCTION app.invitation_by_token_hash(text);
DROP FUNCTION app.api_key_by_prefix(text);
DROP TYPE app.invitation_lookup;
DROP TYPE app.api_key_lookup;
DROP TABLE auth_email_tokens;
