import { adminPool, inTransaction } from './context.js';
import { CliError, explainDatabaseError } from './errors.js';
import { findTenant } from './tenants.js';

export interface SettingRow {
  key: string;
  value: unknown;
  updated_at: Date;
}

/**
 * VALUE as given on the command line: JSON when it parses (42, true, null, {"a":1},
 * "quoted"), else the plain string. Text that opens like JSON ({ [ ") but does not parse
 * is refused rather than stored as a string by accident.
 */
export function parseSettingValue(raw: string, forceString = false): unknown {
  if (forceString) return raw;
  try {
    return JSON.parse(raw) as unknown;
  } catch (error) {
    if (/^\s*[[{"]/.test(raw)) {
      throw new CliError(
        `VALUE ${raw} looks like JSON but does not parse (${(error as Error).message}) — fix it, or pass --string to store it as text`,
        1,
      );
    }
    return raw;
  }
}

export async function setSetting(tenantRef: string, key: string, value: unknown): Promise<SettingRow> {
  try {
    return await inTransaction(async (client) => {
      const tenant = await findTenant(tenantRef, client);
      const { rows } = await client.query<SettingRow>(
        `INSERT INTO tenant_settings (tenant_id, key, value) VALUES ($1, $2, $3::jsonb)
         ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value
         RETURNING key, value, updated_at`,
        [tenant.id, key, JSON.stringify(value)],
      );
      return rows[0]!;
    });
  } catch (error) {
    throw explainDatabaseError(error, { tenant: tenantRef, key });
  }
}

const missing = (tenantRef: string, key: string) =>
  new CliError(`tenant '${tenantRef}' has no setting '${key}' — see \`tenantry setting list ${tenantRef}\``);

export async function getSetting(tenantRef: string, key: string): Promise<SettingRow> {
  const tenant = await findTenant(tenantRef);
  const { rows } = await adminPool().query<SettingRow>(
    `SELECT key, value, updated_at FROM tenant_settings WHERE tenant_id = $1 AND key = $2`,
    [tenant.id, key],
  );
  if (!rows[0]) throw missing(tenantRef, key);
  return rows[0];
}

export async function listSettings(tenantRef: string, prefix?: string): Promise<SettingRow[]> {
  const tenant = await findTenant(tenantRef);
  const { rows } = await adminPool().query<SettingRow>(
    `SELECT key, value, updated_at FROM tenant_settings
      WHERE tenant_id = $1 AND ($2::text IS NULL OR key = $2 OR starts_with(key, $2 || '.'))
      ORDER BY key`,
    [tenant.id, prefix ?? null],
  );
  return rows;
}

export async function unsetSetting(tenantRef: string, key: string): Promise<void> {
  try {
    await inTransaction(async (client) => {
      const tenant = await findTenant(tenantRef, client);
      const { rowCount } = await client.query(`DELETE FROM tenant_settings WHERE tenant_id = $1 AND key = $2`, [tenant.id, key]);
      if (!rowCount) throw missing(tenantRef, key);
    });
  } catch (error) {
    // A deleted tenant's settings are read-only: the database says so.
    throw explainDatabaseError(error, { tenant: tenantRef, key });
  }
}
