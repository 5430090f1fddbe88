DROP TABLE IF EXISTS
  projects, audit_log, tenant_usage, stripe_events, tenant_subscriptions, api_keys,
  refresh_tokens, tenant_invitations, tenant_settings, tenant_domains, tenant_members,
  tenants, users, plans;
DROP SCHEMA IF EXISTS app CASCADE;
DROP TYPE IF EXISTS invitation_status, member_role, tenant_status;
