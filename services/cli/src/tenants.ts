import { hashToken, newOpaqueToken } from '../../shared/src/secrets.js';
import { normaliseEmail } from '../../shared/src/email.js';
import { smtpMailer } from '../../shared/src/mail/mailer.js';
import { invitationMail, MAILED_PATHS, mailedLink } from '../../shared/src/mail/templates.js';
import { cliConfig, need } from './config.js';
import { adminPool, inTransaction, namespaceKit, namespaceStores, purgeEdges, type Queryable } from './context.js';
import { CliError, explainDatabaseError } from './errors.js';
import { findUser, type UserRow } from './users.js';
import { isUuid } from '../../shared/src/ids.js';
import { monthlyUsageReport, usageMonthOf } from '../../shared/src/usage.js';

export type TenantStatus = 'active' | 'suspended' | 'deleted';

export interface TenantRow {
  id: string;
  slug: string;
  name: string;
  status: TenantStatus;
  plan_id: string;
  owner_user_id: string | null;
  suspension_reason: string | null;
  suspended_at: Date | null;
  deleted_at: Date | null;
  purge_after: Date | null;
  created_at: Date;
}

const TENANT_COLUMNS = `t.id, t.slug, t.name, t.status, t.plan_id, t.owner_user_id, t.suspension_reason,
  t.suspended_at, t.deleted_at, t.purge_after, t.created_at`;

/** A tenant by slug or id; the error names the next command to run. */
export async function findTenant(reference: string, db: Queryable = adminPool(), lock = false): Promise<TenantRow> {
  const column = isUuid(reference) ? 't.id = $1::uuid' : 't.slug = $1';
  const { rows } = await db.query<TenantRow>(
    `SELECT ${TENANT_COLUMNS} FROM tenants t WHERE ${column}${lock ? ' FOR UPDATE' : ''}`,
    [reference],
  );
  if (!rows[0]) throw new CliError(`tenant '${reference}' not found — see \`tenantry tenant list\``);
  return rows[0];
}

/** A slug from a display name: "Acme Café, Inc." → "acme-cafe-inc". */
export function slugFromName(name: string): string {
  const base = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 56)
    .replace(/-+$/, '');
  return base.length >= 3 ? base : `${base || 'tenant'}-org`.replace(/^-/, '');
}

/** The first of slug, slug-2, slug-3 … that the database would accept and nobody holds. */
async function freeSlug(client: Queryable, base: string): Promise<string> {
  for (let attempt = 1; attempt < 1000; attempt += 1) {
    const candidate = attempt === 1 ? base : `${base}-${attempt}`;
    const { rows } = await client.query<{ usable: boolean }>(
      `SELECT app.is_valid_slug($1) AND NOT EXISTS (SELECT 1 FROM tenants WHERE slug = $1) AS usable`,
      [candidate],
    );
    if (rows[0]!.usable) return candidate;
  }
  throw new CliError(`no free slug found for '${base}' — choose one with --slug`);
}

export interface CreateTenantInput {
  name: string;
  slug?: string;
  plan?: string;
  /** A user id or email: an existing user becomes the owner, an unknown email is invited as owner. */
  owner: string;
}

export interface CreatedTenant extends TenantRow {
  /** Set when the owner had no account yet: the mailed invitation (the token only went by mail). */
  owner_invitation: { email: string; expires_at: Date } | null;
}

/** The owner named by --owner: an existing, enabled user, or undefined for an email nobody has yet. */
async function existingOwner(client: Queryable, reference: string): Promise<UserRow | undefined> {
  if (!isUuid(reference)) {
    const email = normaliseEmail(reference);
    if (!email) throw new CliError(`--owner '${reference}' is neither a user id nor an email address — give one of them`, 2);
    const { rowCount } = await client.query(`SELECT 1 FROM users WHERE lower(email COLLATE "und-x-icu") = $1`, [email]);
    if (!rowCount) return undefined;
  }
  const user = await findUser(reference, client);
  if (user.disabled_at) throw new CliError(`user '${reference}' is disabled — enable it, or name another owner`);
  return user;
}

/**
 * Mails the owner invitation as the auth service mails its own, inside the transaction
 * that writes it: a mail that cannot be sent leaves no tenant behind.
 */
async function mailOwnerInvitation(tenantName: string, email: string, token: string): Promise<void> {
  const mailer = smtpMailer(need('SMTP_URL'), cliConfig().MAIL_FROM);
  try {
    await mailer.send({ to: email, ...invitationMail(tenantName, mailedLink(need('PUBLIC_URL'), MAILED_PATHS.acceptInvitation, token)) });
  } catch (error) {
    throw new CliError(`the owner invitation to ${email} could not be mailed (${(error as Error).message}) — nothing was created; check SMTP_URL`);
  } finally {
    mailer.close();
  }
}

/**
 * A tenant and its owner in one transaction. The database holds that a tenant with members
 * has an owner; an owner without an account yet gets an owner invitation by mail, and the
 * tenant has no member until it is accepted.
 */
export async function createTenant(input: CreateTenantInput): Promise<CreatedTenant> {
  let slug = input.slug;
  let provisioned: string | undefined;
  try {
    // The settings and clients first: a bad STORAGE_LAYOUT or a missing S3_ENDPOINT refuses before anything is written.
    await namespaceStores();
    const created = await inTransaction(async (client) => {
      const owner = await existingOwner(client, input.owner);
      slug ??= await freeSlug(client, slugFromName(input.name));
      const { rows } = await client.query<{ id: string }>(
        `INSERT INTO tenants (slug, name, plan_id, owner_user_id) VALUES ($1, $2, $3, $4) RETURNING id`,
        [slug, input.name, input.plan ?? 'free', owner?.id ?? null],
      );
      const id = rows[0]!.id;
      // Before the commit (and before the mail, which cannot be taken back): a bucket or
      // Redis user that cannot be made leaves no tenant behind.
      provisioned = id;
      await provisionNamespaces(id, slug);
      if (owner) {
        await client.query(`INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'owner')`, [id, owner.id]);
        return { ...(await findTenant(id, client)), owner_invitation: null };
      }
      const email = normaliseEmail(input.owner)!;
      const token = newOpaqueToken();
      const invited = await client.query<{ expires_at: Date }>(
        `INSERT INTO tenant_invitations (tenant_id, email, role, token_hash) VALUES ($1, $2, 'owner', $3) RETURNING expires_at`,
        [id, email, hashToken(token)],
      );
      await mailOwnerInvitation(input.name, email, token);
      return { ...(await findTenant(id, client)), owner_invitation: { email, expires_at: invited.rows[0]!.expires_at } };
    });
    provisioned = undefined;
    return created;
  } catch (error) {
    if (provisioned) await removeNamespacesQuietly(provisioned, error);
    throw explainDatabaseError(error, { slug, plan: input.plan, tenant: slug, user: input.owner });
  }
}

/** The tenant's bucket (bucket layout) and Redis ACL user, on: what every path that creates a tenant makes. */
async function provisionNamespaces(tenantId: string, slug: string): Promise<void> {
  const { provisionTenantNamespaces } = await namespaceKit();
  try {
    await provisionTenantNamespaces(await namespaceStores(), tenantId, { enabled: true });
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(
      `the bucket or Redis user of tenant '${slug}' could not be made (${(error as Error).message}) — nothing was created; check S3_ENDPOINT, S3_ACCESS_KEY and REDIS_URL`,
    );
  }
}

/**
 * Undoes provisionNamespaces for a tenant whose transaction did not commit. A cleanup that
 * fails as the provisioning did (S3 or Redis away) has nothing to say: what could not be
 * reached was not made there.
 */
export async function removeNamespacesQuietly(tenantId: string, cause: unknown): Promise<void> {
  try {
    const { removeTenantNamespaces } = await namespaceKit();
    await removeTenantNamespaces(await namespaceStores(), tenantId);
  } catch (error) {
    const message = (error as Error).message;
    if (cause instanceof Error && cause.message.includes(message)) return;
    process.stderr.write(
      `tenantry: the bucket or Redis user tenant-${tenantId}, made for a tenant that was not created, could not be removed (${message}) — remove them by hand\n`,
    );
  }
}

/**
 * Applies a tenant's status to its namespaces at once (services/shared/src/storage/namespace.ts,
 * the rule the storage service's keeper applies too). Runs on every status command, changed
 * or not, so running it again repairs a failure.
 */
export async function applyNamespaceState(tenant: { id: string; slug: string; status: TenantStatus }): Promise<void> {
  try {
    const { applyTenantStatus } = await namespaceKit();
    await applyTenantStatus(await namespaceStores(), tenant.id, tenant.status);
  } catch (error) {
    const what = tenant.status === 'active' ? 'its bucket and Redis user could not be made or turned on' : 'its Redis user could not be turned off';
    throw new CliError(
      `tenant ${tenant.slug} is ${tenant.status} (saved), but ${what} (${(error as Error).message}) — run the command again (it applies the state again); the storage service's keeper applies it too when it runs`,
    );
  }
}

export interface TenantListItem {
  id: string;
  slug: string;
  name: string;
  status: TenantStatus;
  plan_id: string;
  member_count: number;
  created_at: Date;
}

export async function listTenants(filter: { status?: string; plan?: string }): Promise<TenantListItem[]> {
  const { rows } = await adminPool().query<TenantListItem>(
    `SELECT t.id, t.slug, t.name, t.status, t.plan_id,
            (SELECT count(*)::int FROM tenant_members m WHERE m.tenant_id = t.id) AS member_count, t.created_at
       FROM tenants t
      WHERE ($1::tenant_status IS NULL OR t.status = $1::tenant_status) AND ($2::text IS NULL OR t.plan_id = $2)
      ORDER BY t.slug`,
    [filter.status ?? null, filter.plan ?? null],
  );
  return rows;
}

export interface TenantDetails extends TenantRow {
  member_count: number;
  limits: { max_users: number | null; max_storage_bytes: number | null; max_api_requests_month: number | null; rate_limit_rps: number };
  usage_this_month: Record<string, number>;
  domains: Array<{ domain: string; verified: boolean; is_primary: boolean }>;
}

export async function showTenant(reference: string): Promise<TenantDetails> {
  const db = adminPool();
  const tenant = await findTenant(reference, db);
  const [members, limits, usage, domains] = await Promise.all([
    db.query<{ count: number }>(`SELECT count(*)::int AS count FROM tenant_members WHERE tenant_id = $1`, [tenant.id]),
    db.query<TenantDetails['limits']>(
      `SELECT max_users, max_storage_bytes::float8 AS max_storage_bytes,
              max_api_requests_month::float8 AS max_api_requests_month, rate_limit_rps
         FROM app.tenant_limits($1)`,
      [tenant.id],
    ),
    // A sampled metric (users, stored bytes) is its latest sample, not the sum of them.
    monthlyUsageReport(db, tenant.id, usageMonthOf(new Date())),
    db.query<{ domain: string; verified: boolean; is_primary: boolean }>(
      `SELECT domain, verified_at IS NOT NULL AS verified, is_primary FROM tenant_domains WHERE tenant_id = $1 ORDER BY domain`,
      [tenant.id],
    ),
  ]);
  return {
    ...tenant,
    member_count: members.rows[0]!.count,
    limits: limits.rows[0]!,
    usage_this_month: Object.fromEntries(usage.metrics.filter((metric) => metric.days.length > 0).map((metric) => [metric.metric, metric.used])),
    domains: domains.rows,
  };
}

/** The tenant's domain names, for the edge purge after a change. */
export async function domainsOf(client: Queryable, tenantId: string): Promise<string[]> {
  const { rows } = await client.query<{ domain: string }>(`SELECT domain FROM tenant_domains WHERE tenant_id = $1`, [tenantId]);
  return rows.map((row) => row.domain);
}

/** Tells the edges to forget the tenant under every name it is known by. */
export async function purgeTenantFromEdges(tenant: { id: string; slug: string }, domains: string[]): Promise<void> {
  await purgeEdges({ tenantId: tenant.id, slug: tenant.slug });
  for (const domain of domains) await purgeEdges({ domain });
}

export interface StatusChange {
  tenant: TenantRow;
  changed: boolean;
}

/** Suspends or re-activates a tenant; a trigger stamps the timestamps, another audits. */
export async function setTenantStatus(
  reference: string,
  status: 'active' | 'suspended',
  reason?: string,
): Promise<StatusChange> {
  const { result, domains } = await explained(reference, () => inTransaction(
    async (client) => {
      const tenant = await findTenant(reference, client, true);
      if (tenant.status === status) return { result: { tenant, changed: false }, domains: [] as string[] };
      await client.query(`UPDATE tenants SET status = $2, suspension_reason = $3 WHERE id = $1`, [
        tenant.id,
        status,
        status === 'suspended' ? (reason ?? null) : null,
      ]);
      return { result: { tenant: await findTenant(tenant.id, client), changed: true }, domains: await domainsOf(client, tenant.id) };
    },
    { reason },
  ));
  await applyStateAndPurgeEdges(result, domains);
  return result;
}

/** The namespaces follow the status (every time), then the edges forget a changed tenant; a failure of either is reported after both were tried. */
async function applyStateAndPurgeEdges(result: StatusChange, domains: string[]): Promise<void> {
  const applied = applyNamespaceState(result.tenant).then(
    () => undefined,
    (error: unknown) => error,
  );
  if (result.changed) await purgeTenantFromEdges(result.tenant, domains);
  const failure = await applied;
  if (failure) throw failure;
}

/** A refusal of the database (the state machine, a deleted tenant) as one sentence. */
async function explained<T>(reference: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw explainDatabaseError(error, { tenant: reference });
  }
}

/**
 * Brings a soft-deleted tenant back as active: the database's app.restore_tenant, the only
 * way out of deleted, audits it with the reason. The edges forget the deleted answer.
 */
export async function restoreTenant(reference: string, reason: string): Promise<TenantRow> {
  const { tenant, domains } = await explained(reference, () =>
    inTransaction(
      async (client) => {
        const found = await findTenant(reference, client, true);
        if (found.status !== 'deleted') {
          throw new CliError(`tenant '${found.slug}' is ${found.status}, not deleted: there is nothing to restore`);
        }
        await client.query('SELECT app.restore_tenant($1, $2)', [found.id, reason]);
        return { tenant: await findTenant(found.id, client), domains: await domainsOf(client, found.id) };
      },
      { reason },
    ),
  );
  await applyStateAndPurgeEdges({ tenant, changed: true }, domains);
  return tenant;
}

/** Soft delete: status deleted, slug kept, data kept until purge_after. */
export async function softDeleteTenant(reference: string, retentionDays: number, reason?: string): Promise<StatusChange> {
  const { result, domains } = await inTransaction(
    async (client) => {
      const tenant = await findTenant(reference, client, true);
      if (tenant.status === 'deleted') return { result: { tenant, changed: false }, domains: [] as string[] };
      await client.query(
        `UPDATE tenants SET status = 'deleted', purge_after = now() + make_interval(days => $2::int) WHERE id = $1`,
        [tenant.id, retentionDays],
      );
      return { result: { tenant: await findTenant(tenant.id, client), changed: true }, domains: await domainsOf(client, tenant.id) };
    },
    { reason },
  );
  await applyStateAndPurgeEdges(result, domains);
  return result;
}

export interface TenantStats {
  total: number;
  by_status: Record<string, number>;
  by_plan: Record<string, number>;
}

export async function tenantStats(): Promise<TenantStats> {
  const db = adminPool();
  const [byStatus, byPlan] = await Promise.all([
    db.query<{ key: string; count: number }>(`SELECT status::text AS key, count(*)::int AS count FROM tenants GROUP BY 1 ORDER BY 1`),
    db.query<{ key: string; count: number }>(
      `SELECT p.id AS key, count(t.id)::int AS count FROM plans p LEFT JOIN tenants t ON t.plan_id = p.id AND t.status <> 'deleted'
        GROUP BY p.id, p.sort_order ORDER BY p.sort_order`,
    ),
  ]);
  const by_status: Record<string, number> = { active: 0, suspended: 0, deleted: 0 };
  for (const row of byStatus.rows) by_status[row.key] = row.count;
  return {
    total: Object.values(by_status).reduce((sum, count) => sum + count, 0),
    by_status,
    by_plan: Object.fromEntries(byPlan.rows.map((row) => [row.key, row.count])),
  };
}
