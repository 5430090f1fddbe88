import { ConfigError, readConfig } from '../../shared/src/config.js';
import { normaliseEmail } from '../../shared/src/email.js';
import { argon2EnvironmentSchema, argon2Parameters, PasswordHasher, passwordSchema } from '../../shared/src/passwords.js';
import { adminPool, inTransaction, type Queryable } from './context.js';
import { CliError, explainDatabaseError } from './errors.js';
import { isUuid } from '../../shared/src/ids.js';


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
  const byId = isUuid(reference);
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

/**
 * The auth service's policy, so a password it would refuse at sign-up cannot be set here;
 * and its argon2 cost (the same AUTH_ARGON2_* variables), so every hash costs the same.
 */
async function hashPassword(password: string): Promise<string> {
  const policy = passwordSchema.safeParse(password);
  if (!policy.success) {
    throw new CliError(`the password ${policy.error.issues[0]!.message} — pipe a longer one into --password-stdin`);
  }
  let cost;
  try {
    cost = readConfig(argon2EnvironmentSchema);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(`${error.problems.join('; ')} — fix the AUTH_ARGON2_* variables or unset them`);
    throw error;
  }
  return new PasswordHasher(argon2Parameters(cost)).hash(password);
}

export async function createUser(input: { email: string; password?: string; name?: string }): Promise<UserRow> {
  const email = normalisedEmail(input.email);
  try {
    const passwordHash = input.password === undefined ? null : await hashPassword(input.password);
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

export interface StaffChange {
  user: UserRow;
  changed: boolean;
}

/**
 * Grants or revokes platform staff (users.is_staff: cross-tenant reads in the auth service).
 * users has no audit trigger, so the entry is written here, with the reason, in the same
 * transaction; a call that changes nothing writes nothing.
 */
export async function setStaff(reference: string, isStaff: boolean, reason: string): Promise<StaffChange> {
  if (reason.trim().length === 0) throw new CliError('--reason is empty — say why, e.g. --reason "on-call rotation"', 2);
  return inTransaction(
    async (client) => {
      const user = await findUser(reference, client);
      const { rowCount } = await client.query(`UPDATE users SET is_staff = $2 WHERE id = $1 AND is_staff <> $2`, [user.id, isStaff]);
      if (!rowCount) return { user, changed: false };
      await client.query(
        `INSERT INTO audit_log (tenant_id, action, target_type, target_id, before, after, reason)
         VALUES (NULL, $2, 'users', $1, jsonb_build_object('email', $3::text, 'is_staff', NOT $4::boolean),
                 jsonb_build_object('email', $3::text, 'is_staff', $4::boolean), $5)`,
        [user.id, isStaff ? 'users.staff.grant' : 'users.staff.revoke', user.email, isStaff, reason],
      );
      return { user: await findUser(user.id, client), changed: true };
    },
    { reason },
  );
}
