-- One spelling per mailbox (issue 13, point 9). The cluster is created with the C locale,
-- where lower() folds A-Z only: x@bücher.test and x@BÜCHER.test were two accounts.
--
-- The stored form is the one services/shared/src/email.ts produces: Unicode NFKC (so
-- fullwidth or ligature look-alikes are the letters they show), no invisible characters
-- (soft hyphen, zero-width joiner, …: refused, they would make a look-alike account), the
-- local part lower-cased with the Unicode default case mapping, the domain as lower-case
-- punycode. lower() under the ICU root collation ("und-x-icu") applies the same default
-- mapping as JavaScript's toLowerCase (tests/shared/email.test.ts compares the two), so
-- the unique indexes fold exactly as the application does, and a CHECK makes every
-- writer (the auth service, the CLI; Hasura cannot write users) store that form.

-- The folded form of an address whose domain is already ASCII, for the rows below only
-- (dropped at the end). The domain's IDN mapping to punycode (UTS 46) has no SQL
-- equivalent: that part is the application's.
CREATE FUNCTION app.fold_email(email text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT normalize(lower(normalize(btrim(email), NFKC) COLLATE "und-x-icu"), NFKC) $$;

-- Unicode's default-ignorable and format (Cf) code points: they render as nothing.
CREATE FUNCTION app.has_invisible_characters(email text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT email ~ '[\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u08E2\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFFB\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0000-\U000E0FFF]'
$$;

CREATE FUNCTION app.is_normalised_email(email text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT email IS NFKC NORMALIZED
     AND NOT app.has_invisible_characters(email)
     AND email = lower(email COLLATE "und-x-icu") COLLATE "C"
     AND app.is_normalised_domain(substring(email FROM '@([^@]*)$'))
$$;
COMMENT ON FUNCTION app.is_normalised_email(text) IS
  'True when an address is stored as services/shared/src/email.ts normalises it: NFKC, no invisible characters, lower case (ICU root), ASCII host-name domain.';
-- A CHECK's function runs with the writer's rights: every role that may write users or
-- tenant_invitations (and app_definer, whose functions write for callers).
GRANT EXECUTE ON FUNCTION app.is_normalised_email(text), app.has_invisible_characters(text) TO hasura_app, app_service, platform_admin, app_definer;

-- Existing rows. SQL can fold case and compose (NFC); it cannot do two things, and the
-- migration stops naming the rows rather than guess:
--   * a domain that is not ASCII needs IDN-to-punycode conversion (UTS 46): fix such rows
--     with the application's normaliseEmail (`tenantry` or a one-off script), then migrate;
--   * two accounts that fold to one address are one mailbox with two passwords and two
--     sets of memberships: merging them is a decision for the operator, not for SQL.
-- Pending invitations that fold to one address in one tenant are safe to reduce to the
-- newest: the older ones are revoked.
--
-- tenant_invitations forces row-level security on its owner too, and no policy names the
-- migration's role: without this it would see no rows, while the unique index below sees all.
ALTER TABLE tenant_invitations NO FORCE ROW LEVEL SECURITY;

DO $$
DECLARE
  offenders text;
BEGIN
  SELECT string_agg(email, ', ' ORDER BY email) INTO offenders FROM (
    SELECT email FROM users WHERE NOT app.is_normalised_domain(substring(app.fold_email(email) FROM '@([^@]*)$'))
    UNION
    SELECT email FROM tenant_invitations WHERE NOT app.is_normalised_domain(substring(app.fold_email(email) FROM '@([^@]*)$'))
    UNION
    SELECT email FROM users WHERE app.has_invisible_characters(email)
    UNION
    SELECT email FROM tenant_invitations WHERE app.has_invisible_characters(email)
    LIMIT 20
  ) AS unconvertible;
  IF offenders IS NOT NULL THEN
    RAISE EXCEPTION 'email addresses with invisible characters, or whose domain SQL cannot convert to punycode: %', offenders
      USING HINT = 'Rewrite them to their normalised form (services/shared/src/email.ts normaliseEmail), then run the migration again.';
  END IF;

  SELECT string_agg(spellings, '; ') INTO offenders FROM (
    SELECT string_agg(email, ' = ' ORDER BY email) AS spellings
    FROM users GROUP BY app.fold_email(email) HAVING count(*) > 1 LIMIT 20
  ) AS duplicates;
  IF offenders IS NOT NULL THEN
    RAISE EXCEPTION 'accounts that are one mailbox under case folding: %', offenders
      USING HINT = 'Merge or remove the duplicate accounts (keep one per mailbox), then run the migration again.';
  END IF;
END
$$;

UPDATE tenant_invitations older SET status = 'revoked', revoked_at = now()
WHERE older.status = 'pending'
  AND EXISTS (
    SELECT 1 FROM tenant_invitations newer
    WHERE newer.tenant_id = older.tenant_id AND newer.status = 'pending' AND newer.id <> older.id
      AND app.fold_email(newer.email) = app.fold_email(older.email)
      AND (newer.created_at, newer.id) > (older.created_at, older.id)
  );

UPDATE users SET email = app.fold_email(email) WHERE email <> app.fold_email(email) COLLATE "C";
UPDATE tenant_invitations SET email = app.fold_email(email) WHERE email <> app.fold_email(email) COLLATE "C";
ALTER TABLE tenant_invitations FORCE ROW LEVEL SECURITY;

DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (lower(email COLLATE "und-x-icu"));
ALTER TABLE users ADD CONSTRAINT users_email_normalised CHECK (app.is_normalised_email(email));

DROP INDEX tenant_invitations_one_pending;
CREATE UNIQUE INDEX tenant_invitations_one_pending ON tenant_invitations (tenant_id, lower(email COLLATE "und-x-icu")) WHERE status = 'pending';
ALTER TABLE tenant_invitations ADD CONSTRAINT tenant_invitations_email_normalised CHECK (app.is_normalised_email(email));

DROP FUNCTION app.fold_email(text);
