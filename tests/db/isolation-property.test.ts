/**
 * Property: whatever sequence of project operations three tenants perform as app_service
 * (through withTenant, as the services do), each tenant sees exactly its own projects, and
 * operations aimed at another tenant's project by id change nothing.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { withTenant } from '../../services/shared/src/db/tenant-context.js';
import { dbError, seedTenant, type SeededTenant } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';

const TENANTS = 3;

type Op =
  | { kind: 'insert'; actor: number; name: string }
  | { kind: 'rename'; actor: number; pick: number; name: string }
  | { kind: 'delete'; actor: number; pick: number }
  | { kind: 'renameForeign'; actor: number; pick: number; name: string }
  | { kind: 'deleteForeign'; actor: number; pick: number }
  | { kind: 'moveToOther'; actor: number; pick: number; to: number }
  | { kind: 'select'; actor: number };

interface ModelRow {
  owner: number;
  name: string;
}

const admin = poolAs('platform_admin');
const service = poolAs('app_service');
let tenants: SeededTenant[] = [];

beforeAll(async () => {
  tenants = await Promise.all(Array.from({ length: TENANTS }, (_, i) => seedTenant(admin, `prop-${i}`)));
});

afterAll(async () => {
  await Promise.all([admin.end(), service.end()]);
});

const context = (actor: number) => ({ tenantId: tenants[actor]!.tenantId, userId: tenants[actor]!.ownerUserId });

/** Ground truth for the three tenants, as platform_admin. */
async function loadModel(): Promise<Map<string, ModelRow>> {
  const ids = tenants.map((tenant) => tenant.tenantId);
  const { rows } = await admin.query<{ id: string; tenant_id: string; name: string }>(
    'SELECT id, tenant_id, name FROM projects WHERE tenant_id = ANY($1::uuid[])',
    [ids],
  );
  return new Map(rows.map((row) => [row.id, { owner: ids.indexOf(row.tenant_id), name: row.name }]));
}

function expectedView(model: Map<string, ModelRow>, actor: number) {
  return [...model]
    .filter(([, row]) => row.owner === actor)
    .map(([id, row]) => ({ id, tenant_id: tenants[actor]!.tenantId, name: row.name }))
    .sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}

async function view(actor: number) {
  return withTenant(service, context(actor), async (client) => {
    const { rows } = await client.query<{ id: string; tenant_id: string; name: string }>(
      'SELECT id::text, tenant_id::text, name FROM projects ORDER BY id::text COLLATE "C"',
    );
    return rows;
  });
}

const owned = (model: Map<string, ModelRow>, actor: number) =>
  [...model].filter(([, row]) => row.owner === actor).map(([id]) => id).sort();
const foreign = (model: Map<string, ModelRow>, actor: number) =>
  [...model].filter(([, row]) => row.owner !== actor).map(([id]) => id).sort();

async function apply(op: Op, model: Map<string, ModelRow>): Promise<void> {
  const run = <T>(work: Parameters<typeof withTenant<T>>[2]) => withTenant(service, context(op.actor), work);
  switch (op.kind) {
    case 'insert': {
      const { rows } = await run((client) =>
        client.query<{ id: string; tenant_id: string }>('INSERT INTO projects (name) VALUES ($1) RETURNING id::text, tenant_id::text', [op.name]),
      );
      // tenant_id comes from the session (the column default), never from the caller.
      expect(rows[0]!.tenant_id).toBe(tenants[op.actor]!.tenantId);
      model.set(rows[0]!.id, { owner: op.actor, name: op.name });
      return;
    }
    case 'rename':
    case 'delete': {
      const ids = owned(model, op.actor);
      if (ids.length === 0) return;
      const id = ids[op.pick % ids.length]!;
      const result = await run((client) =>
        op.kind === 'rename'
          ? client.query('UPDATE projects SET name = $2 WHERE id = $1', [id, op.name])
          : client.query('DELETE FROM projects WHERE id = $1', [id]),
      );
      expect(result.rowCount, `${op.kind} own project`).toBe(1);
      if (op.kind === 'rename') model.set(id, { owner: op.actor, name: op.name });
      else model.delete(id);
      return;
    }
    case 'renameForeign':
    case 'deleteForeign': {
      const ids = foreign(model, op.actor);
      if (ids.length === 0) return;
      const id = ids[op.pick % ids.length]!;
      const result = await run((client) =>
        op.kind === 'renameForeign'
          ? client.query('UPDATE projects SET name = $2 WHERE id = $1', [id, op.name])
          : client.query('DELETE FROM projects WHERE id = $1', [id]),
      );
      expect(result.rowCount, `${op.kind} of another tenant's project`).toBe(0);
      return;
    }
    case 'moveToOther': {
      const ids = owned(model, op.actor);
      const to = (op.actor + 1 + (op.to % (TENANTS - 1))) % TENANTS;
      if (ids.length === 0) return;
      const id = ids[op.pick % ids.length]!;
      const error = await dbError(
        run((client) => client.query('UPDATE projects SET tenant_id = $2 WHERE id = $1', [id, tenants[to]!.tenantId])),
      );
      expect(error?.code, 'moving a project to another tenant must be refused').toBe('42501');
      return;
    }
    case 'select':
      expect(await view(op.actor)).toEqual(expectedView(model, op.actor));
      return;
  }
}

const actor = fc.integer({ min: 0, max: TENANTS - 1 });
const pick = fc.nat({ max: 1000 });
const name = fc.integer({ min: 0, max: 999_999 }).map((n) => `p${n}`);
const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('insert' as const), actor, name }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('rename' as const), actor, pick, name }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('delete' as const), actor, pick }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('renameForeign' as const), actor, pick, name }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('deleteForeign' as const), actor, pick }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('moveToOther' as const), actor, pick, to: pick }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('select' as const), actor }), weight: 1 },
);

test('each tenant sees exactly its own projects after any sequence of operations', { timeout: 120_000 }, async () => {
  let operations = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(opArbitrary, { minLength: 5, maxLength: 25, size: 'max' }), async (ops) => {
      // Re-read ground truth each run, so a shrunk replay starts from the database as it is.
      const model = await loadModel();
      for (const op of ops) {
        await apply(op, model);
        operations += 1;
        for (let t = 0; t < TENANTS; t += 1) {
          expect(await view(t), `tenant ${t} after ${op.kind} by tenant ${op.actor}`).toEqual(expectedView(model, t));
        }
      }
      expect(await loadModel()).toEqual(model);
    }),
    { numRuns: 20 },
  );
  // Guard against a vacuous run (e.g. every sequence empty).
  expect(operations).toBeGreaterThanOrEqual(20 * 5);
});
