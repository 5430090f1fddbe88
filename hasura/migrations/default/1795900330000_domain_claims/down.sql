DROP TRIGGER tenant_domains_verified_name ON tenant_domains;
DROP FUNCTION app.keep_verified_domain_name();
REVOKE INSERT (tenant_id, domain, is_primary), UPDATE (is_primary) ON tenant_domains FROM app_service;
GRANT INSERT, UPDATE ON tenant_domains TO app_service;
REVOKE INSERT (tenant_id, domain, is_primary), UPDATE (is_primary) ON tenant_domains FROM hasura_app;
GRANT INSERT, UPDATE ON tenant_domains TO hasura_app;

DROP TRIGGER tenant_domains_remove_rival_claims ON tenant_domains;
DROP FUNCTION app.remove_rival_domain_claims();
REVOKE DELETE ON tenant_domains FROM app_definer;

-- One tenant per domain again: of the claims sharing a domain keep the verified one, else
-- the oldest; the others' unverified claims go (they could not exist before this migration).
-- Row-level security is forced on the owner too, and no policy names the migration's role.
ALTER TABLE tenant_domains NO FORCE ROW LEVEL SECURITY;
DELETE FROM tenant_domains d
WHERE d.verified_at IS NULL
  AND EXISTS (
    SELECT 1 FROM tenant_domains keep
    WHERE keep.domain = d.domain AND keep.id <> d.id
      AND (keep.verified_at IS NOT NULL OR (keep.created_at, keep.id) < (d.created_at, d.id))
  );
ALTER TABLE tenant_domains FORCE ROW LEVEL SECURITY;

DROP INDEX tenant_domains_verified_domain_key;
CREATE INDEX tenant_domains_tenant_id_idx ON tenant_domains (tenant_id);
ALTER TABLE tenant_domains DROP CONSTRAINT tenant_domains_tenant_id_domain_key;
ALTER TABLE tenant_domains ADD CONSTRAINT tenant_domains_domain_key UNIQUE (domain);
