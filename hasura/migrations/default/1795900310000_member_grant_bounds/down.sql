REVOKE SELECT (email) ON users FROM app_definer;
REVOKE UPDATE (status, accepted_at, accepted_by) ON tenant_invitations FROM app_definer;
REVOKE INSERT ON tenants, tenant_members FROM app_definer;

DROP FUNCTION app.accept_invitation(text, uuid);
DROP FUNCTION app.create_tenant_with_owner(uuid, text, text, uuid);
DROP TRIGGER tenant_invitations_grant_bounds ON tenant_invitations;
DROP TRIGGER tenant_members_grant_bounds ON tenant_members;
DROP FUNCTION app.enforce_grant_bounds();
DROP FUNCTION app.session_member(uuid);
DROP FUNCTION app.member_can(member_role, text[], text);
DROP FUNCTION app.grants_cover(text[], text);
DROP FUNCTION app.grant_matches(text, text);
DROP FUNCTION app.role_rank(member_role);
DROP FUNCTION app.role_permissions(member_role);
DROP FUNCTION app.writer_is_exempt(oid);

-- The foundation's permission-list CHECK. NULL elements are not put back: removing them
-- lost nothing a permission check ever matched.
CREATE OR REPLACE FUNCTION app.is_valid_permission_list(permissions text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT coalesce(bool_and(p ~ '^(\*|[a-z][a-z0-9_]*:(\*|[a-z][a-z0-9_]*))$'), true) FROM unnest(permissions) AS p
$$;
