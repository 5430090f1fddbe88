/**
 * What tests/e2e/graphql.test.ts needs from flows.mts. flows.mts is checked against the
 * generated operation types (tests/e2e/tsconfig.json) and must satisfy this, so the test
 * stays typed without a committed copy of Hasura's schema.
 */
export interface Caller {
  token?: string;
  host?: string;
  tenantSlug?: string;
}
export interface Project {
  id: string;
  tenant_id: string;
  name: string;
}
export interface Refusal {
  status: number;
  message: string;
  code: string | undefined;
}
/** The computed fields of tenants, one per plan feature (scripts/hasura/registry.ts, PLAN_FEATURES). */
export interface PlanFeatures {
  has_feature_api_keys?: boolean | null;
  has_feature_custom_domains?: boolean | null;
  has_feature_sso?: boolean | null;
  has_feature_audit_export?: boolean | null;
}
export interface Operations {
  projects(): Promise<Project[]>;
  project(id: string): Promise<Project | null>;
  insert(name: string): Promise<Project | null>;
  insertInto(tenantId: string, name: string): Promise<unknown>;
  rename(id: string, name: string): Promise<{ affected_rows: number; returning: Array<{ id: string; name: string }> } | null>;
  remove(id: string): Promise<number | null>;
  plans(): Promise<Array<{ id: string; name: string }>>;
  branding(): Promise<Array<{ slug: string; name: string; settings: unknown }>>;
  settings(): Promise<unknown>;
  /** The plan features of the caller's tenant (Hasura computed fields). */
  features(): Promise<PlanFeatures[]>;
  /** The caller's tenant's subscription: owners and admins only. */
  subscription(): Promise<Array<{ plan_id: string; status: string }>>;
}
export interface FlowsContract {
  operations(edgeUrl: string, caller: Caller): Operations;
  refusal(operation: Promise<unknown>): Promise<Refusal>;
  subscribeProjects(edgeUrl: string, caller: Caller): { results: Project[][]; errors: unknown[]; close(): Promise<void> };
}
