import { adminPool, inTransaction, type Queryable } from './context.js';
import { CliError, explainDatabaseError } from './errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface UserRow {
  id: string;
  email: string;
  display_name: string;
  is_staff: boolean;
  has_password: boolean;
  email_verified_at: Date | null;
  disabled_at: Date | null;
  created_at: Date;
}

const USER_COLUMNS = `u.id, u.email, u.display_name, u.is_staff, u.password_hash IS NOT NULL AS has_password,
  u.email_verified_at, u.disabled_at, u.created_at`;

/** A user by id or email (case-insensitive, as the unique index compares). */
export async function findUser(reference: string, db: Queryable = adminPool()): Promise<UserRow> {
  const where = UUID.test(reference) ? 'u.id = $1::uuid' : 'lower(u.email) = lower($1)';
  const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users u WHERE ${where}`, [reference]);
  if (!rows[0]) {
    const hint = reference.includes('@') ? `create it with \`tenantry user create ${reference}\`` : 'see `tenantry user list`';
    throw new CliError(`user '${reference}' not found — ${hint}`);
  }
  return rows[0];
}

export async function createUser(input: { email: string; password?: string; name?: string }): Promise<UserRow> {
  try {
    let passwordHash: string | null = null;
    if (input.password !== undefined) {
      const argon2 = await import('argon2');
      passwordHash = await argon2.hash(input.password, { type: argon2.argon2id });
    }
    return await inTransaction(async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `INSERT INTO users (email, display_name, password_hash) VALUES ($1, $2, $3) RETURNING id`,
        [input.email, input.name ?? '', passwordHash],
      );
      // users has no tenant: the audit entry is a platform entry, written here.
      await client.query(
        `INSERT INTO audit_log (tenant_id, action, target_type, target_id, after)
         VALUES (NULL, 'users.insert', 'users', $1, jsonb_build_object('email', $2::text))`,
        [rows[0]!.id, input.email],
      );
      return findUser(rows[0]!.id, client);
    });
  } catch (error) {
    throw explainDatabaseError(error, { email: input.email });
  }
}

export async function listUsers(filter: { email?: string }): Promise<UserRow[]> {
  const { rows } = await adminPool().query<UserRow>(
    `SELECT ${USER_COLUMNS} FROM users u WHERE $1::text IS NULL OR u.email ILIKE '%' || $1 || '%' ORDER BY lower(u.email)`,
    [filter.email ?? null],
  );
  return rows;
}
