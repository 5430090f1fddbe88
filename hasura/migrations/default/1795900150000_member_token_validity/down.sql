DROP FUNCTION app.member_token_state(uuid, uuid);
DROP TRIGGER tenant_members_token_validity ON tenant_members;
DROP FUNCTION app.stamp_member_token_validity();
ALTER TABLE tenant_members DROP COLUMN tokens_valid_after;
