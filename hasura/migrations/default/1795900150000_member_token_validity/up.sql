-- Access tokens live up to 15 minutes; a removed member or a changed role must not wait
-- that long. The edge asks (through the resolver, cached for a few seconds) whether a
-- token's user is still a member and whether the token was issued after the member's
-- role or permissions last changed.
ALTER TABLE tenant_members ADD COLUMN tokens_valid_after timestamptz NOT NULL DEFAULT now();

CREATE FUNCTION app.stamp_member_token_validity() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  IF NEW.role IS DISTINCT FROM OLD.role OR NEW.permissions IS DISTINCT FROM OLD.permissions THEN
    NEW.tokens_valid_after := now();
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER tenant_members_token_validity BEFORE UPDATE OF role, permissions ON tenant_members
  FOR EACH ROW EXECUTE FUNCTION app.stamp_member_token_validity();

CREATE FUNCTION app.member_token_state(p_tenant_id uuid, p_user_id uuid)
RETURNS TABLE (tenant_id uuid, user_id uuid, role member_role, tokens_valid_after timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
  SELECT m.tenant_id, m.user_id, m.role, m.tokens_valid_after
  FROM tenant_members m
  WHERE m.tenant_id = p_tenant_id AND m.user_id = p_user_id
$$;
ALTER FUNCTION app.member_token_state(uuid, uuid) OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.member_token_state(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.member_token_state(uuid, uuid) TO app_service;
