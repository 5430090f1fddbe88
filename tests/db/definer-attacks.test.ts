/**
 * Attacks on the SECURITY DEFINER functions through temporary tables (issue 13, point 6).
 *
 * PostgreSQL searches pg_temp first for tables unless a search_path names it elsewhere, so a
 * definer whose search_path is `pg_catalog, public` reads and writes whatever temporary
 * table the caller made under the same name. The caller may also fire a definer on a
 * temporary table of its own through a trigger, if it may EXECUTE the function. Each attack
 * runs twice: on the database as deployed (the application roles may not create temporary
 * tables at all), and on one where an operator has granted TEMPORARY back, where the
 * definers' own search_path and the revoked EXECUTE must still hold on their own.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hasuraSessionJson, type TenantContext } from '../../services/shared/src/db/tenant-context.js';
import { bootstrapDatabase, type LoginRole } from '../../services/shared/src/db/bootstrap.js';
import { migrate } from '../../services/shared/src/db/migrations.js';
import { createUsers, dbError, seedTenant, type SeededTenant } from '../fixtures/seed.js';
import { createScratchDatabase, services, type ScratchDatabase } from '../helpers/database.js';

type AttackingRole = Extract<LoginRole, 'app_service' | 'hasura_app' | 'platform_admin'>;

interface Target {
  label: string;
  /** Whether the application roles may create temporary tables there. */
  temporaryTables: boolean;
  url(role: LoginRole): string;
  prepare?(): Promise<void>;
  dispose?(): Promise<void>;
}

const INSUFFICIENT_PRIVILEGE = '42501';
const APPLICATION_ROLES: AttackingRole[] = ['app_service', 'hasura_app', 'platform_admin'];

const deployed: Target = { label: 'as deployed', temporaryTables: false, url: (role) => services().urls[role] };

let scratch: ScratchDatabase | undefined;
const temporaryGrantedBack: Target = {
  label: 'with TEMPORARY granted back to the application roles',
  temporaryTables: true,
  url: (role) => scratch!.url(role),
  async prepare() {
    scratch = await createScratchDatabase({ migrated: true });
    await scratch.grantTemporary(APPLICATION_ROLES);
  },
  dispose: () => scratch!.drop(),
};

/**
 * Runs the attacker's set-up statements one by one, outside any transaction, and returns
 * the message of the first one the database refuses for lack of privilege (the attack
 * stops there), or undefined when all of them ran. Any other error is a broken test.
 */
async function refusal(client: pg.Client, statements: string[]): Promise<string | undefined> {
  for (const statement of statements) {
    const error = await dbError(client.query(statement));
    if (error?.code === INSUFFICIENT_PRIVILEGE) return error.message;
    if (error) throw error;
  }
  return undefined;
}

const NO_TEMPORARY_TABLES = 'permission denied to create temporary tables in database';

/** Sets `hasura.user` for the open transaction exactly as Hasura does in a mutation. */
async function beginAs(client: pg.Client, context: TenantContext): Promise<void> {
  await client.query('BEGIN');
  await client.query("SELECT set_config('hasura.user', $1, true)", [hasuraSessionJson(context)]);
}

/**
 * A temporary table the definers' owner may use: the attacker owns it, so may grant it.
 * Only the columns the definers name: a shadow needs nothing more to be used.
 */
const shadow = (table: string, columns: string) => [
  `CREATE TEMP TABLE ${table} (${columns})`,
  `GRANT ALL ON pg_temp.${table} TO PUBLIC`,
];
const SHADOW_AUDIT_LOG = shadow(
  'audit_log',
  'tenant_id uuid, actor text, actor_user_id uuid, db_role text, action text, target_type text, target_id text, before jsonb, after jsonb, reason text',
);

describe.each([deployed, temporaryGrantedBack])('definer attacks through temporary tables, $label', (target) => {
  let admin: pg.Pool;
  let attacker: SeededTenant;
  let victim: SeededTenant;
  const clients: pg.Client[] = [];

  /**
   * Plants shadowing tables. Where the roles may create temporary tables, the shadow must be
   * in place, so the test proves the definer ignores it; elsewhere TEMPORARY stops it first.
   */
  async function plantShadow(client: pg.Client, statements: string[]): Promise<void> {
    const refused = await refusal(client, statements);
    if (target.temporaryTables) expect(refused).toBeUndefined();
    else expect(refused).toContain(NO_TEMPORARY_TABLES);
  }

  /** What stops a trigger on the attacker's own table from firing a definer. */
  const triggerRefusal = (definer: string) =>
    target.temporaryTables ? `permission denied for function app.${definer}` : NO_TEMPORARY_TABLES;

  async function connectAs(role: AttackingRole): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: target.url(role), application_name: `definer-attack-${role}` });
    await client.connect();
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    await target.prepare?.();
    admin = new pg.Pool({ connectionString: target.url('platform_admin'), max: 3 });
    attacker = await seedTenant(admin, 'definer-attacker');
    victim = await seedTenant(admin, 'definer-victim');
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end()));
    await admin.end();
    await target.dispose?.();
  });

  /** The real audit entries for `tenantId` after the entry with id `since`. */
  async function auditSince(tenantId: string, since: string) {
    const { rows } = await admin.query<{ action: string; db_role: string; after: Record<string, unknown> | null }>(
      'SELECT action, db_role, after FROM audit_log WHERE tenant_id = $1 AND id > $2 ORDER BY id',
      [tenantId, since],
    );
    return rows;
  }

  async function lastAuditId(): Promise<string> {
    const { rows } = await admin.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM audit_log');
    return rows[0]!.id;
  }

  test.each(['app_service', 'platform_admin'] as const)(
    '%s changes plan and owner behind a temporary audit_log: the change is audited all the same',
    async (role) => {
      const client = await connectAs(role);
      await plantShadow(client, SHADOW_AUDIT_LOG);
      const since = await lastAuditId();

      await beginAs(client, { tenantId: attacker.tenantId, userId: attacker.ownerUserId, role: 'owner' });
      // A plan per role: an update that changes nothing is no audit entry. app_service moves
      // a plan only through app.billing_set_plan, a definer writing the audit entry itself.
      const plan = role === 'app_service' ? 'enterprise' : 'pro';
      if (role === 'app_service') {
        const moved = await client.query<{ changed: boolean }>(`SELECT app.billing_set_plan($1, $2, 'behind a shadow') AS changed`, [attacker.tenantId, plan]);
        expect(moved.rows).toEqual([{ changed: true }]);
      }
      const changed = await client.query(
        role === 'app_service'
          ? `UPDATE public.tenants SET owner_user_id = $2 WHERE id = $1`
          : `UPDATE public.tenants SET plan_id = $3, owner_user_id = $2 WHERE id = $1`,
        role === 'app_service' ? [attacker.tenantId, attacker.memberUserId] : [attacker.tenantId, attacker.memberUserId, plan],
      );
      await client.query('COMMIT');
      expect(changed.rowCount).toBe(1);

      const entries = await auditSince(attacker.tenantId, since);
      expect(entries.map(({ action, db_role, after }) => ({ action, db_role, plan: after?.plan_id, owner: after?.owner_user_id }))).toEqual([
        ...(role === 'app_service' ? [{ action: 'tenants.update', db_role: role, plan, owner: attacker.ownerUserId }] : []),
        { action: 'tenants.update', db_role: role, plan, owner: attacker.memberUserId },
      ]);
    },
  );

  test('app_service lists every tenant through app.staff_list_tenants with a made-up staff id in a temporary users', async () => {
    const client = await connectAs('app_service');
    const madeUpStaffId = randomUUID();
    await plantShadow(client, [
      ...shadow('users', 'id uuid, is_staff boolean, disabled_at timestamptz'),
      `INSERT INTO users VALUES ('${madeUpStaffId}', true, NULL)`,
      ...SHADOW_AUDIT_LOG,
    ]);

    const error = await dbError(client.query('SELECT id FROM app.staff_list_tenants($1, NULL, 500)', [madeUpStaffId]));
    expect(error?.code).toBe(INSUFFICIENT_PRIVILEGE);
    expect(error?.message).toMatch(/is not platform staff/);
  });

  test.each(['app_service', 'hasura_app'] as const)(
    '%s adds members past the user limit behind a temporary tenant_members',
    async (role) => {
      const seededMembers = 2;
      await admin.query('UPDATE tenants SET max_users = $2 WHERE id = $1', [attacker.tenantId, seededMembers]);
      const [extra] = await createUsers(admin, `definer-limit-${role}`, 1);
      const client = await connectAs(role);
      await plantShadow(client, shadow('tenant_members', 'tenant_id uuid, user_id uuid'));

      await beginAs(client, { tenantId: attacker.tenantId, userId: attacker.ownerUserId, role: 'owner' });
      const error = await dbError(
        client.query('INSERT INTO public.tenant_members (tenant_id, user_id) VALUES ($1, $2)', [attacker.tenantId, extra]),
      );
      await client.query('ROLLBACK');
      expect(error?.code).toBe('23514');
      expect(error?.constraint).toBe('tenant_members_user_limit');
      await admin.query('UPDATE tenants SET max_users = NULL WHERE id = $1', [attacker.tenantId]);
    },
  );

  test('hasura_app forges an entry in another tenant’s audit log by firing app.audit_row_change on a temporary table', async () => {
    const client = await connectAs('hasura_app');
    const since = await lastAuditId();
    const refused = await refusal(client, [
      ...shadow('tenants', 'id uuid, plan_id text'),
      `CREATE TRIGGER forge AFTER INSERT ON tenants FOR EACH ROW EXECUTE FUNCTION app.audit_row_change('id')`,
    ]);
    if (refused === undefined) await client.query(`INSERT INTO tenants VALUES ($1, 'free')`, [victim.tenantId]);

    expect(await auditSince(victim.tenantId, since)).toEqual([]);
    expect(refused).toContain(triggerRefusal('audit_row_change'));
  });

  test('hasura_app locks another tenant’s row by firing app.enforce_member_limit on a temporary table', async () => {
    const client = await connectAs('hasura_app');
    const refused = await refusal(client, [
      ...shadow('squat', 'tenant_id uuid'),
      'CREATE TRIGGER squat_lock AFTER INSERT ON squat FOR EACH ROW EXECUTE FUNCTION app.enforce_member_limit()',
    ]);
    await client.query('BEGIN');
    try {
      if (refused === undefined) await client.query('INSERT INTO squat VALUES ($1)', [victim.tenantId]);
      // The victim's own change must not wait for the attacker's transaction.
      const owner = await admin.connect();
      try {
        await owner.query('BEGIN');
        await owner.query("SET LOCAL lock_timeout = '1s'");
        const error = await dbError(owner.query('SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE', [victim.tenantId]));
        await owner.query('ROLLBACK');
        expect(error).toBeUndefined();
      } finally {
        owner.release();
      }
    } finally {
      await client.query('ROLLBACK');
    }
    expect(refused).toContain(triggerRefusal('enforce_member_limit'));
  });

  test('a member makes app.current_member_role() answer owner through a temporary tenant_members', async () => {
    const client = await connectAs('hasura_app');
    await plantShadow(client, [
      ...shadow('tenant_members', 'tenant_id uuid, user_id uuid, role member_role'),
      `INSERT INTO tenant_members VALUES ('${victim.tenantId}', '${victim.memberUserId}', 'owner')`,
    ]);
    await beginAs(client, { tenantId: victim.tenantId, userId: victim.memberUserId, role: 'member' });
    const { rows } = await client.query<{ role: string }>('SELECT app.current_member_role()::text AS role');
    await client.query('ROLLBACK');
    expect(rows).toEqual([{ role: 'member' }]);
  });

  test('app_service resolves a suspended tenant as active through a temporary tenants', async () => {
    await admin.query(`UPDATE tenants SET status = 'suspended', suspension_reason = 'unpaid' WHERE id = $1`, [victim.tenantId]);
    try {
      const client = await connectAs('app_service');
      await plantShadow(client, [
        ...shadow('tenants', 'id uuid, slug text, status tenant_status, plan_id text, max_api_requests_month bigint'),
        `INSERT INTO tenants VALUES ('${victim.tenantId}', '${victim.slug}', 'active', 'enterprise', NULL)`,
      ]);
      const { rows } = await client.query<{ status: string; plan_id: string }>(
        'SELECT status::text, plan_id FROM app.resolve_tenant_by_slug($1)',
        [victim.slug],
      );
      expect(rows).toEqual([{ status: 'suspended', plan_id: 'pro' }]);
    } finally {
      await admin.query(`UPDATE tenants SET status = 'active' WHERE id = $1`, [victim.tenantId]);
    }
  });

  /** A temporary tenants carrying what the billing definers read and write. */
  const SHADOW_TENANTS = shadow('tenants', 'id uuid, plan_id text, status tenant_status, suspension_reason text, stripe_customer_id text, feature_overrides jsonb');
  const realTenant = async (tenantId: string) =>
    (
      await admin.query<{ plan_id: string; status: string; suspension_reason: string | null }>(
        'SELECT plan_id, status::text, suspension_reason FROM tenants WHERE id = $1',
        [tenantId],
      )
    ).rows[0]!;

  test('app_service maps a customer id to the victim through a temporary tenants: app.billing_tenant_by_customer', async () => {
    const client = await connectAs('app_service');
    const forged = `cus_forged${victim.tenantId.slice(0, 8)}`;
    await plantShadow(client, [...SHADOW_TENANTS, `INSERT INTO tenants VALUES ('${victim.tenantId}', 'pro', 'active', NULL, '${forged}', '{}')`]);
    const { rows } = await client.query('SELECT app.billing_tenant_by_customer($1) AS id', [forged]);
    expect(rows).toEqual([{ id: null }]);
  });

  test('app_service keeps the victim on its plan through a temporary tenants that says it is there already: app.billing_set_plan', async () => {
    const client = await connectAs('app_service');
    // The real tenant is on pro; the shadow says starter, so a definer reading it would see nothing to change.
    await plantShadow(client, [...SHADOW_TENANTS, `INSERT INTO tenants VALUES ('${victim.tenantId}', 'starter', 'active', NULL, NULL, '{}')`]);
    try {
      const { rows } = await client.query(`SELECT app.billing_set_plan($1, 'starter', 'downgrade') AS changed`, [victim.tenantId]);
      expect(rows).toEqual([{ changed: true }]);
      expect(await realTenant(victim.tenantId)).toMatchObject({ plan_id: 'starter' });
    } finally {
      await admin.query(`UPDATE tenants SET plan_id = 'pro' WHERE id = $1`, [victim.tenantId]);
    }
  });

  test('app_service lifts an abuse suspension through a temporary tenants that says billing: app.billing_set_suspended', async () => {
    await admin.query(`UPDATE tenants SET status = 'suspended', suspension_reason = 'abuse' WHERE id = $1`, [victim.tenantId]);
    try {
      const client = await connectAs('app_service');
      await plantShadow(client, [...SHADOW_TENANTS, `INSERT INTO tenants VALUES ('${victim.tenantId}', 'pro', 'suspended', 'billing', NULL, '{}')`]);
      const { rows } = await client.query(`SELECT app.billing_set_suspended($1, false, 'invoice.paid') AS changed`, [victim.tenantId]);
      expect(rows).toEqual([{ changed: false }]);
      expect(await realTenant(victim.tenantId)).toMatchObject({ status: 'suspended', suspension_reason: 'abuse' });
    } finally {
      await admin.query(`UPDATE tenants SET status = 'active' WHERE id = $1`, [victim.tenantId]);
    }
  });

  test('hasura_app fires app.require_plan_feature on a temporary table of its own', async () => {
    const client = await connectAs('hasura_app');
    const refused = await refusal(client, [
      ...shadow('squat', 'tenant_id uuid'),
      `CREATE TRIGGER probe BEFORE INSERT ON squat FOR EACH ROW EXECUTE FUNCTION app.require_plan_feature('api_keys')`,
    ]);
    expect(refused).toContain(triggerRefusal('require_plan_feature'));
  });

  test('app_service finds an API key that does not exist, with the role it likes, through a temporary api_keys', async () => {
    const client = await connectAs('app_service');
    const prefix = `tk_forged${victim.apiKeyPrefix.slice(3, 9)}`;
    await plantShadow(client, [
      ...shadow(
        'api_keys',
        'id uuid, tenant_id uuid, prefix text, key_hash text, role member_role, scopes text[], created_by uuid, expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz',
      ),
      `INSERT INTO api_keys VALUES (gen_random_uuid(), '${victim.tenantId}', '${prefix}', 'attacker-chosen', 'owner', '{*}', '${victim.ownerUserId}', NULL, NULL, NULL)`,
    ]);
    const { rows } = await client.query('SELECT * FROM app.api_key_by_prefix($1)', [prefix]);
    expect(rows).toEqual([]);
  });
});

describe('TEMPORARY on the database', () => {
  test('neither bootstrap nor the migrations leave it to the application roles, even where an older bootstrap granted it', async () => {
    const { endpoints, passwords, migrationsDir } = services();
    const database = await createScratchDatabase({ migrated: false });
    const superuser = new pg.Client({ connectionString: endpoints.postgresAdminUrl });
    await superuser.connect();
    try {
      const holders = async () => {
        const { rows } = await superuser.query<{ role: string }>(
          `SELECT role FROM unnest($2::text[]) AS role WHERE has_database_privilege(role, $1, 'TEMPORARY') ORDER BY role`,
          [database.name, APPLICATION_ROLES],
        );
        return rows.map((row) => row.role);
      };
      const grantAsBefore = () => superuser.query(`GRANT TEMPORARY ON DATABASE "${database.name}" TO ${APPLICATION_ROLES.join(', ')}`);

      expect(await holders()).toEqual([]);

      await grantAsBefore();
      await migrate({ databaseUrl: database.url('tenantry_owner'), directory: migrationsDir });
      expect(await holders()).toEqual([]);

      await grantAsBefore();
      await bootstrapDatabase({ adminUrl: endpoints.postgresAdminUrl, database: database.name, passwords });
      expect(await holders()).toEqual([]);
    } finally {
      await superuser.end();
      await database.drop();
    }
  });
});
