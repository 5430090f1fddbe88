import { adminPool, inTransaction, type Queryable } from './context.js';
import { CliError, explainDatabaseError } from './errors.js';
import { findTenant } from './tenants.js';
import { findUser } from './users.js';
import type { TenantRole } from '../../shared/src/roles.js';

export type Role = TenantRole;

export interface MemberRow {
  user_id: string;
  email: string;
  display_name: string;
  role: Role;
  joined_at: Date;
}

/** Runs a membership change; the user limit and the last-owner rule are the database's. */
async function change<T>(tenantRef: string, userRef: string, work: Parameters<typeof inTransaction<T>>[0]): Promise<T> {
  try {
    return await inTransaction(work);
  } catch (error) {
    throw explainDatabaseError(error, { tenant: tenantRef, user: userRef });
  }
}

export async function addMember(tenantRef: string, userRef: string, role: Role): Promise<MemberRow> {
  return change(tenantRef, userRef, async (client) => {
    const tenant = await findTenant(tenantRef, client);
    const user = await findUser(userRef, client);
    await client.query(`INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, $3)`, [tenant.id, user.id, role]);
    return (await memberRows(tenant.id, client, user.id))[0]!;
  });
}

export async function updateMember(tenantRef: string, userRef: string, role: Role): Promise<MemberRow> {
  return change(tenantRef, userRef, async (client) => {
    const tenant = await findTenant(tenantRef, client);
    const user = await findUser(userRef, client);
    const { rowCount } = await client.query(`UPDATE tenant_members SET role = $3 WHERE tenant_id = $1 AND user_id = $2`, [
      tenant.id,
      user.id,
      role,
    ]);
    if (!rowCount) throw notMember(tenantRef, userRef);
    return (await memberRows(tenant.id, client, user.id))[0]!;
  });
}

export async function removeMember(tenantRef: string, userRef: string): Promise<void> {
  await change(tenantRef, userRef, async (client) => {
    const tenant = await findTenant(tenantRef, client);
    const user = await findUser(userRef, client);
    const { rowCount } = await client.query(`DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2`, [tenant.id, user.id]);
    if (!rowCount) throw notMember(tenantRef, userRef);
  });
}

const notMember = (tenantRef: string, userRef: string) =>
  new CliError(`user '${userRef}' is not a member of tenant '${tenantRef}' — see \`tenantry member list ${tenantRef}\``);

async function memberRows(tenantId: string, db: Queryable = adminPool(), userId?: string): Promise<MemberRow[]> {
  const { rows } = await db.query<MemberRow>(
    `SELECT m.user_id, u.email, u.display_name, m.role, m.joined_at
       FROM tenant_members m JOIN users u ON u.id = m.user_id
      WHERE m.tenant_id = $1 AND ($2::uuid IS NULL OR m.user_id = $2)
      ORDER BY m.role, lower(u.email)`,
    [tenantId, userId ?? null],
  );
  return rows;
}

export async function listMembers(tenantRef: string): Promise<MemberRow[]> {
  const tenant = await findTenant(tenantRef);
  return memberRows(tenant.id);
}
