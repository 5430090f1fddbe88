import type { PoolClient } from 'pg';

/**
 * The host a tenant's people use: its primary verified custom domain while its plan
 * includes custom domains (the edge resolves it only then), else `<slug>.<baseDomain>`.
 */
export async function tenantHost(client: PoolClient, tenantId: string, baseDomain: string): Promise<string> {
  const { rows } = await client.query<{ slug: string; custom_domain: string | null }>({
    name: 'billing-tenant-host',
    text: `SELECT t.slug,
                  CASE WHEN app.tenant_has_feature(t.id, 'custom_domains') THEN
                    (SELECT d.domain FROM tenant_domains d WHERE d.tenant_id = t.id AND d.is_primary AND d.verified_at IS NOT NULL)
                  END AS custom_domain
           FROM tenants t WHERE t.id = $1`,
    values: [tenantId],
  });
  const row = rows[0]!;
  return row.custom_domain ?? `${row.slug}.${baseDomain}`;
}

/** What the customer comes back from: a finished or abandoned checkout, or the portal. */
export type ReturnResult = 'success' | 'cancel' | 'portal';

/** BILLING_RETURN_URL with the tenant's host and the result filled in. */
export function returnUrl(template: string, host: string, result: ReturnResult): string {
  return template.replaceAll('{host}', host).replaceAll('{result}', result);
}
