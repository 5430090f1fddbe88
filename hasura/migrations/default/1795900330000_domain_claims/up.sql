-- Custom domains: an unverified domain is a claim, not a possession (issue 13, point 7).
-- Before this, UNIQUE (domain) let any tenant admin add another tenant's domain through
-- GraphQL, unverified, and so keep the real owner from ever adding it. Now:
--   * a tenant claims a domain once (tenant_id, domain); any number of tenants may claim it;
--   * only verified domains are unique: the first tenant to verify wins, a second
--     verification fails on tenant_domains_verified_domain_key;
--   * verifying removes every other tenant's unverified claim on that domain;
--   * hasura_app and app_service may write only the columns a tenant chooses (domain,
--     is_primary): the verification state is written by the CLI (platform_admin) after a
--     DNS check, never by a tenant (no service writes domains);
--   * the name of a verified domain never changes except by the platform: renaming one to
--     another tenant's name kept verified_at (and the rival trigger deleted the real
--     owner's claim).

ALTER TABLE tenant_domains DROP CONSTRAINT tenant_domains_domain_key;
ALTER TABLE tenant_domains ADD CONSTRAINT tenant_domains_tenant_id_domain_key UNIQUE (tenant_id, domain);
-- The new constraint's index leads with tenant_id, so the single-column one is redundant.
DROP INDEX tenant_domains_tenant_id_idx;
-- Also the index app.resolve_tenant_by_domain looks a domain up with.
CREATE UNIQUE INDEX tenant_domains_verified_domain_key ON tenant_domains (domain) WHERE verified_at IS NOT NULL;

-- The rivals' claims belong to other tenants, which row-level security hides from the
-- verifying session: hence a definer. It deletes unverified rows only, and only of the
-- domain just verified; each deletion is audited in the rival tenant's log.
CREATE FUNCTION app.remove_rival_domain_claims() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
  DELETE FROM public.tenant_domains rival
  WHERE rival.domain = NEW.domain AND rival.tenant_id <> NEW.tenant_id AND rival.verified_at IS NULL;
  RETURN NULL;
END
$$;
ALTER FUNCTION app.remove_rival_domain_claims() OWNER TO app_definer;
REVOKE EXECUTE ON FUNCTION app.remove_rival_domain_claims() FROM PUBLIC;
GRANT DELETE ON tenant_domains TO app_definer;

-- AFTER: the partial unique index has already refused a second verification by then.
CREATE TRIGGER tenant_domains_remove_rival_claims AFTER INSERT OR UPDATE OF verified_at, domain ON tenant_domains
  FOR EACH ROW WHEN (NEW.verified_at IS NOT NULL) EXECUTE FUNCTION app.remove_rival_domain_claims();

-- The table-wide grant let hasura_app write verified_at and verification_token directly
-- (Hasura's permissions did not, but the database is the layer every writer passes).
-- A column REVOKE does not narrow a table-wide grant, so replace it with column grants:
-- Hasura inserts domain and is_primary with tenant_id preset from the session, and
-- updates is_primary only.
REVOKE INSERT, UPDATE ON tenant_domains FROM hasura_app;
GRANT INSERT (tenant_id, domain, is_primary), UPDATE (is_primary) ON tenant_domains TO hasura_app;

-- app_service gets what hasura_app has: no service writes domains (the CLI is platform_admin).
REVOKE INSERT, UPDATE ON tenant_domains FROM app_service;
GRANT INSERT (tenant_id, domain, is_primary), UPDATE (is_primary) ON tenant_domains TO app_service;

-- No application role may update `domain` now; this holds whatever is granted later:
-- verification belongs to the name it was checked for.
CREATE FUNCTION app.keep_verified_domain_name() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
  IF current_user <> 'platform_admin'
     AND NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN
    RAISE EXCEPTION 'a verified domain keeps its name (% cannot become %): claim the new name and verify it', OLD.domain, NEW.domain
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'tenant_domains_verified_name';
  END IF;
  RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION app.keep_verified_domain_name() FROM PUBLIC;
CREATE TRIGGER tenant_domains_verified_name BEFORE UPDATE OF domain ON tenant_domains
  FOR EACH ROW WHEN (OLD.verified_at IS NOT NULL AND NEW.domain IS DISTINCT FROM OLD.domain)
  EXECUTE FUNCTION app.keep_verified_domain_name();
