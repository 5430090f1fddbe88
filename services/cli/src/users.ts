import { normaliseEmail } from '../../shared/src/email.js';
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

/** The stored spelling of an address the operator typed, or a usage error. */
function normalisedEmail(input: string): string {
  const email = normaliseEmail(input);
  if (!email) throw new CliError(`'${input}' is not an email address — give one such as ops@example.com`);
  return email;
}

/**
 * A user by id or email, in any spelling of the address: it is normalised as stored and
 * compared by the expression of the unique index users_email_key, which the lookup uses.
 */
export async function findUser(reference: string, db: Queryable = adminPool()): Promise<UserRow> {
  const byId = UUID.test(reference);
  const email = byId ? null : normaliseEmail(reference);
  const rows = byId
    ? (await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users u WHERE u.id = $1::uuid`, [reference])).rows
    : email
      ? (await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users u WHERE lower(u.email COLLATE "und-x-icu") = $1`, [email])).rows
      : [];
  if (!rows[0]) {
    const hint = reference.includes('@') ? `create it with \`tenantry user create ${reference}\`` : 'see `tenantry user list`';
    throw new CliError(`user '${reference}' not found — ${hint}`);
  }
  return rows[0];
}

export async function createUser(input: { email: string; password?: string; name?: string }): Promise<UserRow> {
  const email = normalisedEmail(input.email);
  try {
    let passwordHash: string | null = null;
    if (input.password !== undefined) {
      const argon2 = await import('argon2');
      passwordHash = await argon2.hash(input.password, { type: argon2.argon2id });
    }
    return await inTransaction(async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `INSERT INTO users (email, display_name, password_hash) VALUES ($1, $2, $3) RETURNING id`,
        [email, input.name ?? '', passwordHash],
      );
      // users has no tenant: the audit entry is a platform entry, written here.
      await client.query(
        `INSERT INTO audit_log (tenant_id, action, target_type, target_id, after)
         VALUES (NULL, 'users.insert', 'users', $1, jsonb_build_object('email', $2::text))`,
        [rows[0]!.id, email],
      );
      return findUser(rows[0]!.id, client);
    });
  } catch (error) {
    throw explainDatabaseError(error, { email });
  }
}

/** Stored addresses are normalised: a filter matches them once folded the same way. */
const emailFilter = (text: string): string => normaliseEmail(text) ?? text.trim().normalize('NFKC').toLowerCase().normalize('NFKC');

export async function listUsers(filter: { email?: string }): Promise<UserRow[]> {
  const { rows } = await adminPool().query<UserRow>(
    `SELECT ${USER_COLUMNS} FROM users u WHERE $1::text IS NULL OR u.email LIKE '%' || $1 || '%' ORDER BY u.email`,
    [filter.email === undefined ? null : emailFilter(filter.email)],
  );
  return rows;
}
