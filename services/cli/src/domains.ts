import { Resolver } from 'node:dns/promises';
import { normaliseDomain } from '../../shared/src/tenancy.js';
import { cliConfig } from './config.js';
import { adminPool, inTransaction, purgeEdges, type Queryable } from './context.js';
import { CliError, explainDatabaseError } from './errors.js';
import { findTenant, type TenantRow } from './tenants.js';

export const CHALLENGE_LABEL = '_tenantry-challenge';

export interface DomainRow {
  domain: string;
  verified_at: Date | null;
  is_primary: boolean;
  verification_token: string;
  created_at: Date;
}

export interface TxtRecord {
  type: 'TXT';
  name: string;
  value: string;
}

export const challengeRecord = (row: Pick<DomainRow, 'domain' | 'verification_token'>): TxtRecord => ({
  type: 'TXT',
  name: `${CHALLENGE_LABEL}.${row.domain}`,
  value: row.verification_token,
});

function normalised(input: string): string {
  const domain = normaliseDomain(input);
  if (!domain) throw new CliError(`'${input}' is not a valid domain name — give a host name such as app.example.com`);
  return domain;
}

const DOMAIN_COLUMNS = 'domain, verified_at, is_primary, verification_token, created_at';

async function findDomain(tenant: TenantRow, domain: string, db: Queryable = adminPool()): Promise<DomainRow> {
  const { rows } = await db.query<DomainRow>(`SELECT ${DOMAIN_COLUMNS} FROM tenant_domains WHERE tenant_id = $1 AND domain = $2`, [
    tenant.id,
    domain,
  ]);
  if (!rows[0]) {
    throw new CliError(`domain '${domain}' is not a domain of tenant '${tenant.slug}' — see \`tenantry domain list ${tenant.slug}\``);
  }
  return rows[0];
}

/**
 * The tenant that verified `domain`, when it is not `tenantId`. An unverified claim blocks
 * nobody (any number of tenants may claim a domain, the first to verify keeps it); a
 * verified one is another tenant's until they remove it.
 */
async function verifiedElsewhere(domain: string, tenantId: string, db: Queryable = adminPool()): Promise<string | null> {
  const { rows } = await db.query<{ slug: string }>(
    `SELECT t.slug FROM tenant_domains d JOIN tenants t ON t.id = d.tenant_id
      WHERE d.domain = $1 AND d.verified_at IS NOT NULL AND d.tenant_id <> $2`,
    [domain, tenantId],
  );
  return rows[0]?.slug ?? null;
}

const verifiedByOther = (domain: string, owner: string) =>
  new CliError(`domain '${domain}' is verified by tenant '${owner}' — remove it there first (\`tenantry domain remove ${owner} ${domain}\`)`);

export async function addDomain(tenantRef: string, input: string): Promise<DomainRow> {
  const domain = normalised(input);
  try {
    return await inTransaction(async (client) => {
      const tenant = await findTenant(tenantRef, client);
      const owner = await verifiedElsewhere(domain, tenant.id, client);
      if (owner) throw verifiedByOther(domain, owner);
      const { rows } = await client.query<DomainRow>(
        `INSERT INTO tenant_domains (tenant_id, domain) VALUES ($1, $2) RETURNING ${DOMAIN_COLUMNS}`,
        [tenant.id, domain],
      );
      return rows[0]!;
    });
  } catch (error) {
    throw explainDatabaseError(error, { tenant: tenantRef, domain });
  }
}

export async function listDomains(tenantRef: string): Promise<DomainRow[]> {
  const tenant = await findTenant(tenantRef);
  const { rows } = await adminPool().query<DomainRow>(
    `SELECT ${DOMAIN_COLUMNS} FROM tenant_domains WHERE tenant_id = $1 ORDER BY is_primary DESC, domain`,
    [tenant.id],
  );
  return rows;
}

/** The resolver to ask: TENANTRY_DNS_SERVER (host:port, comma-separated) or the system's. */
function resolver(): Resolver {
  const resolverInstance = new Resolver({ timeout: 3_000, tries: 2 });
  const servers = cliConfig().TENANTRY_DNS_SERVER;
  if (servers) resolverInstance.setServers(servers.split(','));
  return resolverInstance;
}

async function lookupTxt(name: string): Promise<string[]> {
  try {
    return (await resolver().resolveTxt(name)).map((chunks) => chunks.join(''));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA') return [];
    throw new CliError(`DNS lookup of ${name} failed (${code ?? (error as Error).message}) — check the resolver (TENANTRY_DNS_SERVER) and retry`);
  }
}

export interface VerifyResult {
  domain: DomainRow;
  already_verified: boolean;
}

export async function verifyDomain(tenantRef: string, input: string): Promise<VerifyResult> {
  const domain = normalised(input);
  const tenant = await findTenant(tenantRef);
  const row = await findDomain(tenant, domain);
  if (row.verified_at) return { domain: row, already_verified: true };
  const owner = await verifiedElsewhere(domain, tenant.id);
  if (owner) throw verifiedByOther(domain, owner);
  const record = challengeRecord(row);
  const found = await lookupTxt(record.name);
  if (!found.includes(record.value)) {
    throw new CliError(
      found.length === 0
        ? `domain '${domain}' is not verified: no TXT record at ${record.name} — create it with the value ${record.value} and retry`
        : `domain '${domain}' is not verified: the TXT record at ${record.name} does not hold ${record.value} — fix it and retry`,
    );
  }
  // Verifying removes the other tenants' unverified claims on the domain (a trigger); if
  // another tenant verified it since the check above, the unique index refuses this one.
  const verified = await inTransaction(async (client) => {
    const { rows } = await client.query<DomainRow>(
      `UPDATE tenant_domains SET verified_at = now() WHERE tenant_id = $1 AND domain = $2 RETURNING ${DOMAIN_COLUMNS}`,
      [tenant.id, domain],
    );
    return rows[0];
  }).catch((error: unknown) => {
    throw explainDatabaseError(error, { tenant: tenantRef, domain });
  });
  if (!verified) {
    // Another tenant verified it meanwhile, and that removed this tenant's claim.
    throw new CliError(`domain '${domain}' was verified by another tenant meanwhile — the first tenant to verify a domain keeps it`);
  }
  // An edge may remember the domain as unknown (negative cache).
  await purgeEdges({ domain });
  return { domain: verified, already_verified: false };
}

export async function removeDomain(tenantRef: string, input: string): Promise<void> {
  const domain = normalised(input);
  await inTransaction(async (client) => {
    const tenant = await findTenant(tenantRef, client);
    await findDomain(tenant, domain, client);
    await client.query(`DELETE FROM tenant_domains WHERE tenant_id = $1 AND domain = $2`, [tenant.id, domain]);
  });
  await purgeEdges({ domain });
}

export async function setPrimaryDomain(tenantRef: string, input: string): Promise<DomainRow> {
  const domain = normalised(input);
  const result = await inTransaction(async (client) => {
    const tenant = await findTenant(tenantRef, client, true);
    const row = await findDomain(tenant, domain, client);
    if (!row.verified_at) {
      throw new CliError(`domain '${domain}' is not verified — run \`tenantry domain verify ${tenant.slug} ${domain}\` first`);
    }
    await client.query(`UPDATE tenant_domains SET is_primary = false WHERE tenant_id = $1 AND is_primary AND domain <> $2`, [
      tenant.id,
      domain,
    ]);
    const { rows } = await client.query<DomainRow>(
      `UPDATE tenant_domains SET is_primary = true WHERE tenant_id = $1 AND domain = $2 RETURNING ${DOMAIN_COLUMNS}`,
      [tenant.id, domain],
    );
    return { tenant, row: rows[0]! };
  });
  await purgeEdges({ tenantId: result.tenant.id, slug: result.tenant.slug });
  return result.row;
}
