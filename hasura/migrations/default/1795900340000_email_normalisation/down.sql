-- The rows stay in their normalised form: it is a valid spelling under the old rules too.
ALTER TABLE tenant_invitations DROP CONSTRAINT tenant_invitations_email_normalised;
DROP INDEX tenant_invitations_one_pending;
CREATE UNIQUE INDEX tenant_invitations_one_pending ON tenant_invitations (tenant_id, lower(email)) WHERE status = 'pending';

ALTER TABLE users DROP CONSTRAINT users_email_normalised;
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

DROP FUNCTION app.is_normalised_email(text);
DROP FUNCTION app.has_invisible_characters(text);
