/**
 * One error catalog (services/shared/src/errors/catalog.ts) for the services and the edge:
 * the Lua catalog is generated from it and must be current, and every code the edge's Lua
 * or nginx.conf answers is in it with the status they answer.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { ERRORS } from '../../services/shared/src/errors/catalog.js';
import { DATABASE_REFUSALS, databaseRefusal } from '../../services/shared/src/errors/database.js';
import { errorCatalogLuaIsCurrent, renderErrorCatalogLua } from '../../scripts/edge/error-catalog.js';

const root = path.resolve(import.meta.dirname, '../..');
const luaDir = path.join(root, 'nginx/lua/tenantry');

test('the Lua error catalog is generated from the shared catalog and current', () => {
  expect(errorCatalogLuaIsCurrent(), 'run npm run edge:catalog').toBe(true);
  for (const [code, [status]] of Object.entries(ERRORS)) expect(renderErrorCatalogLua()).toContain(`  ${code} = { status = ${status}, `);
});

test('every refusal in the edge Lua names a catalog code (the catalog gives its status)', () => {
  const refusals: string[] = [];
  for (const file of readdirSync(luaDir).filter((name) => name.endsWith('.lua'))) {
    const source = readFileSync(path.join(luaDir, file), 'utf8');
    for (const [, code] of source.matchAll(/refuse\(\s*[^,]+,\s*"([a-z_]+)"/g)) {
      refusals.push(`${file} ${code}`);
      expect(Object.hasOwn(ERRORS, code!), `${file}: ${code} is not in the catalog`).toBe(true);
    }
  }
  expect(refusals.length).toBeGreaterThan(15);
});

test("nginx.conf's own JSON answers use catalog codes with their statuses", () => {
  const template = readFileSync(path.join(root, 'nginx/templates/nginx.conf.template'), 'utf8');
  const answers = [...template.matchAll(/return ([45]\d{2}) '(\{.*\})';/g)];
  expect(answers.length).toBeGreaterThan(0);
  for (const [, status, body] of answers) {
    const parsed = JSON.parse(body!) as { error?: { code: string }; errors?: { extensions: { code: string } }[] };
    const code = parsed.error?.code ?? parsed.errors![0]!.extensions.code;
    expect(ERRORS[code as keyof typeof ERRORS]?.[0], code).toBe(Number(status));
  }
});

test('the database refusals map to catalog codes, matched on constraint and SQLSTATE', () => {
  for (const [constraint, [, code]] of Object.entries(DATABASE_REFUSALS)) expect(Object.hasOwn(ERRORS, code), constraint).toBe(true);
  expect(databaseRefusal({ code: '23514', constraint: 'tenant_members_last_owner' })).toMatchObject({ status: 409, code: 'last_owner' });
  // The same name with another SQLSTATE is not that rule (a user could name a constraint so).
  expect(databaseRefusal({ code: '23505', constraint: 'tenant_members_last_owner' })).toBeNull();
  expect(databaseRefusal({ code: '23505', constraint: 'something_else' })).toBeNull();
});
