/**
 * The Hasura metadata lint: reads hasura/metadata as Hasura would (resolving `!include`) and
 * checks it against the migrated database and the tenant catalog of the isolation lint
 * (listTenantTables), so the two layers of isolation (docs/architecture.md, "Two layers of
 * isolation") are checked from the same list of tenant tables.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { parse } from 'yaml';
import { listTenantTables } from '../../services/shared/src/db/isolation-lint.js';
import { METADATA_DIR } from './generate-metadata.js';
import { BASE_HASURA_ROLES, baseHasuraRoleOf, HASURA_ROLES, readOnlyHasuraRole } from '../../services/shared/src/roles.js';
import {
  BILLING_COLUMNS,
  BILLING_READERS,
  featureComputedField,
  featureFunction,
  INTERNAL_TABLES,
  SECRET_COLUMNS,
  SERVER_ONLY_COLUMNS,
  TENANT_SESSION_VARIABLE,
} from './registry.js';

export type MetadataRule =
  | 'unknown-table'
  | 'unknown-column'
  | 'unknown-relationship'
  | 'untracked-table'
  | 'tenant-filter-missing'
  | 'tenant-check-missing'
  | 'tenant-preset-missing'
  | 'tenant-column-writable'
  | 'unfiltered-select'
  | 'reserved-role'
  | 'unknown-role'
  | 'wildcard-columns'
  | 'secret-column'
  | 'server-only-writable'
  | 'billing-below-manager'
  | 'unknown-computed-field'
  | 'feature-without-computed-field'
  | 'anonymous-write'
  | 'anonymous-aggregation'
  | 'column-not-granted'
  | 'read-only-write'
  | 'read-only-select-differs';

export interface MetadataProblem {
  table: string;
  role?: string;
  rule: MetadataRule;
  message: string;
}

type BoolExp = Record<string, unknown>;
interface Permission<P> {
  role: string;
  permission: P;
}
export interface TableMetadata {
  table: { name: string; schema?: string };
  configuration?: Record<string, unknown>;
  computed_fields?: Array<{ name: string; definition: { function: { name: string; schema?: string } } }>;
  object_relationships?: Array<{
    name: string;
    using: {
      foreign_key_constraint_on?: string;
      manual_configuration?: { remote_table: { name: string }; column_mapping: Record<string, string> };
    };
  }>;
  array_relationships?: Array<{
    name: string;
    using: {
      foreign_key_constraint_on?: { column: string; table: { name: string } };
      manual_configuration?: { remote_table: { name: string }; column_mapping: Record<string, string> };
    };
  }>;
  insert_permissions?: Array<Permission<{ check?: BoolExp; set?: Record<string, string>; columns: string[] | '*' }>>;
  select_permissions?: Array<Permission<{ columns: string[] | '*'; computed_fields?: string[]; filter?: BoolExp; limit?: number; allow_aggregations?: boolean }>>;
  update_permissions?: Array<Permission<{ columns: string[] | '*'; filter?: BoolExp; check?: BoolExp | null; set?: Record<string, string> }>>;
  delete_permissions?: Array<Permission<{ filter?: BoolExp }>>;
}


/** Reads a metadata YAML file, replacing every "!include <file>" string with that file's content. */
function readWithIncludes(file: string): unknown {
  const resolve = (value: unknown): unknown => {
    if (typeof value === 'string' && value.startsWith('!include ')) {
      return readWithIncludes(path.resolve(path.dirname(file), value.slice('!include '.length).trim()));
    }
    if (Array.isArray(value)) return value.map(resolve);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, resolve(inner)]));
    return value;
  };
  return resolve(parse(readFileSync(file, 'utf8')));
}

/** The tracked tables of the `default` source, as Hasura loads them from the directory. */
export function loadTables(directory = METADATA_DIR): TableMetadata[] {
  const sources = readWithIncludes(path.join(directory, 'databases/databases.yaml')) as Array<{ name: string; tables: TableMetadata[] }>;
  const source = sources.find((candidate) => candidate.name === 'default');
  if (!source) throw new Error('hasura/metadata has no "default" source');
  return source.tables ?? [];
}

interface ForeignKey {
  table: string;
  column: string;
  refTable: string;
  refColumn: string;
}
/** A function that may back a scalar computed field: one argument, a row of `rowTable`. */
interface RowFunction {
  rowTable: string | null;
  volatility: 'i' | 's' | 'v';
  returnsSet: boolean;
  returnsScalar: boolean;
  executable: boolean;
}
interface Catalog {
  columns: Map<string, Set<string>>;
  /** Functions of one argument, by "schema.name". */
  rowFunctions: Map<string, RowFunction>;
  /** Every key of plans.features in the live database. */
  planFeatures: string[];
  foreignKeys: ForeignKey[];
  privileges: Map<string, { select: Set<string>; insert: Set<string>; update: Set<string>; delete: boolean }>;
  tenantTables: Map<string, string>;
}

async function readCatalog(client: pg.ClientBase, role: string, schema: string): Promise<Catalog> {
  const columns = new Map<string, Set<string>>();
  const privileges: Catalog['privileges'] = new Map();
  const { rows } = await client.query<{ table: string; column: string; sel: boolean; ins: boolean; upd: boolean; del: boolean }>(
    `SELECT c.relname AS table, a.attname AS column,
            has_column_privilege($1, c.oid, a.attnum, 'SELECT') AS sel,
            has_column_privilege($1, c.oid, a.attnum, 'INSERT') AS ins,
            has_column_privilege($1, c.oid, a.attnum, 'UPDATE') AS upd,
            has_table_privilege($1, c.oid, 'DELETE') AS del
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE n.nspname = $2 AND c.relkind IN ('r', 'p', 'v', 'm')`,
    [role, schema],
  );
  for (const row of rows) {
    if (!columns.has(row.table)) {
      columns.set(row.table, new Set());
      privileges.set(row.table, { select: new Set(), insert: new Set(), update: new Set(), delete: row.del });
    }
    columns.get(row.table)!.add(row.column);
    const granted = privileges.get(row.table)!;
    if (row.sel) granted.select.add(row.column);
    if (row.ins) granted.insert.add(row.column);
    if (row.upd) granted.update.add(row.column);
  }
  const { rows: foreignKeys } = await client.query<ForeignKey>(
    `SELECT c.relname AS table, a.attname AS column, r.relname AS "refTable", ra.attname AS "refColumn"
       FROM pg_constraint k
       JOIN pg_class c ON c.oid = k.conrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_class r ON r.oid = k.confrelid
       JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
       JOIN pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = k.confkey[1]
      WHERE k.contype = 'f' AND n.nspname = $1 AND cardinality(k.conkey) = 1`,
    [schema],
  );
  const tenantTables = new Map((await listTenantTables(client, schema)).map((table) => [table.table, table.tenantColumn]));
  const { rows: functions } = await client.query<{ name: string; row_table: string | null } & Omit<RowFunction, 'rowTable'>>(
    `SELECT n.nspname || '.' || p.proname AS name, r.relname AS row_table, p.provolatile AS volatility, p.proretset AS "returnsSet",
            rt.typtype IN ('b', 'd', 'e') AS "returnsScalar", has_function_privilege($1, p.oid, 'EXECUTE') AND has_schema_privilege($1, n.oid, 'USAGE') AS executable
       FROM pg_proc p
       JOIN pg_namespace n ON n.oid = p.pronamespace
       JOIN pg_type rt ON rt.oid = p.prorettype
       LEFT JOIN pg_type at ON at.oid = p.proargtypes[0]
       LEFT JOIN pg_class r ON r.oid = at.typrelid
      WHERE p.pronargs = 1 AND p.prokind = 'f' AND n.nspname NOT IN ('pg_catalog', 'information_schema')`,
    [role],
  );
  const rowFunctions = new Map(functions.map(({ name, row_table, ...rest }) => [name, { rowTable: row_table, ...rest }]));
  const hasPlans = columns.get('plans')?.has('features') ?? false;
  const planFeatures = hasPlans
    ? (await client.query<{ key: string }>(`SELECT DISTINCT jsonb_object_keys(features) AS key FROM ${client.escapeIdentifier(schema)}.plans ORDER BY 1`)).rows.map(
        (row) => row.key,
      )
    : [];
  return { columns, rowFunctions, planFeatures, foreignKeys, privileges, tenantTables };
}

const isSessionTenant = (value: unknown) => typeof value === 'string' && value.toLowerCase() === TENANT_SESSION_VARIABLE.toLowerCase();

/** True when the expression requires `<column> = X-Hasura-Tenant-Id`: directly or as a conjunct of _and, never under _or / _not. */
export function requiresTenant(expression: BoolExp | null | undefined, column: string): boolean {
  if (!expression) return false;
  const comparison = expression[column] as Record<string, unknown> | undefined;
  if (comparison && typeof comparison === 'object' && isSessionTenant(comparison._eq)) return true;
  const conjuncts = expression._and;
  return Array.isArray(conjuncts) && conjuncts.some((inner) => requiresTenant(inner as BoolExp, column));
}

const OPERATOR_KEYS = new Set(['_and', '_or', '_not', '_exists']);

/** Any role named as read-only, known or not: such a role may never write. */
const READ_ONLY_NAME = /_readonly$/;

/** A permission as comparable text: keys sorted at every level, column lists as sets. */
function canonical(value: unknown, key?: string): string {
  if (Array.isArray(value)) {
    const items = value.map((item) => canonical(item));
    return `[${(key === 'columns' ? items.sort() : items).join(',')}]`;
  }
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([inner, innerValue]) => `${JSON.stringify(inner)}:${canonical(innerValue, inner)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Checks every whole-document invariant; an empty list means the metadata is what the
 * database and the tenant model require. `role` is the database role Hasura connects as.
 */
export async function lintMetadata(
  client: pg.ClientBase,
  tables: TableMetadata[] = loadTables(),
  options: { role?: string; schema?: string; internalTables?: Readonly<Record<string, string>> } = {},
): Promise<MetadataProblem[]> {
  const { role: dbRole = 'hasura_app', schema = 'public', internalTables = INTERNAL_TABLES } = options;
  const catalog = await readCatalog(client, dbRole, schema);
  const problems: MetadataProblem[] = [];
  const report = (table: string, rule: MetadataRule, message: string, role?: string) =>
    problems.push({ table, rule, message: `${table}${role ? ` (${role})` : ''}: ${message}`, ...(role ? { role } : {}) });

  const byName = new Map(tables.map((table) => [table.table.name, table]));

  /** The remote table of each relationship of a tracked table, or undefined when it does not exist. */
  const relationshipTarget = (table: TableMetadata, name: string): string | undefined => {
    for (const relationship of table.object_relationships ?? []) {
      if (relationship.name !== name) continue;
      const column = relationship.using.foreign_key_constraint_on;
      if (column) return catalog.foreignKeys.find((key) => key.table === table.table.name && key.column === column)?.refTable;
      return relationship.using.manual_configuration?.remote_table.name;
    }
    for (const relationship of table.array_relationships ?? []) {
      if (relationship.name !== name) continue;
      return relationship.using.foreign_key_constraint_on?.table.name ?? relationship.using.manual_configuration?.remote_table.name;
    }
    return undefined;
  };

  const computedField = (table: TableMetadata, name: string) => table.computed_fields?.find((field) => field.name === name);

  /** Walks a boolean expression: every key is an operator, a column or a relationship of its table. */
  const checkExpression = (tableName: string, expression: unknown, where: string, role: string, needSelect: boolean) => {
    if (!expression || typeof expression !== 'object') return;
    const columns = catalog.columns.get(tableName);
    const table = byName.get(tableName);
    for (const [key, value] of Object.entries(expression as BoolExp)) {
      if (key === '_and' || key === '_or') {
        for (const inner of Array.isArray(value) ? value : []) checkExpression(tableName, inner, where, role, needSelect);
      } else if (key === '_not') {
        checkExpression(tableName, value, where, role, needSelect);
      } else if (OPERATOR_KEYS.has(key)) {
        continue;
      } else if (columns?.has(key)) {
        if (needSelect && !catalog.privileges.get(tableName)?.select.has(key)) {
          report(tableName, 'column-not-granted', `${where} reads ${key}, which ${dbRole} may not SELECT`, role);
        }
      } else if (table && relationshipTarget(table, key)) {
        checkExpression(relationshipTarget(table, key)!, value, where, role, needSelect);
      } else if (table && computedField(table, key)) {
        continue;
      } else {
        report(tableName, 'unknown-column', `${where} names ${key}, which is neither a column nor a relationship of ${tableName}`, role);
      }
    }
  };

  const checkColumns = (tableName: string, role: string, kind: 'select' | 'insert' | 'update', columns: string[] | '*') => {
    if (columns === '*' || columns.includes('*')) {
      report(tableName, 'wildcard-columns', `${kind} permission lists "*": list the columns`, role);
      return;
    }
    const known = catalog.columns.get(tableName);
    const granted = catalog.privileges.get(tableName)?.[kind];
    for (const column of columns) {
      if (!known?.has(column)) {
        report(tableName, 'unknown-column', `${kind} permission names column ${column}, which does not exist`, role);
      } else if (!granted?.has(column)) {
        report(tableName, 'column-not-granted', `${kind} permission names ${column}, which ${dbRole} may not ${kind.toUpperCase()} in Postgres`, role);
      }
    }
  };

  const checkRole = (tableName: string, role: string) => {
    if (role === 'admin') {
      report(tableName, 'reserved-role', '"admin" is Hasura\'s built-in unrestricted role: the tenant admin is tenant_admin', role);
    } else if (!HASURA_ROLES.includes(role as never)) {
      report(tableName, 'unknown-role', `role ${role} is not one of ${HASURA_ROLES.join(', ')}`, role);
    }
  };

  for (const table of tables) {
    const name = table.table.name;
    if ((table.table.schema ?? 'public') !== schema || !catalog.columns.has(name)) {
      report(name, 'unknown-table', `tracked, but no table ${schema}.${name} exists`);
      continue;
    }
    const columns = catalog.columns.get(name)!;
    const tenantColumn = catalog.tenantTables.get(name);

    for (const relationship of table.object_relationships ?? []) {
      const column = relationship.using.foreign_key_constraint_on;
      if (column !== undefined) {
        if (!catalog.foreignKeys.some((key) => key.table === name && key.column === column)) {
          report(name, 'unknown-relationship', `object relationship ${relationship.name}: no foreign key on ${name}.${column}`);
        }
      } else {
        checkManual(name, relationship.name, relationship.using.manual_configuration);
      }
    }
    for (const relationship of table.array_relationships ?? []) {
      const foreignKey = relationship.using.foreign_key_constraint_on;
      if (foreignKey) {
        if (!catalog.foreignKeys.some((key) => key.table === foreignKey.table.name && key.column === foreignKey.column && key.refTable === name)) {
          report(name, 'unknown-relationship', `array relationship ${relationship.name}: no foreign key ${foreignKey.table.name}.${foreignKey.column} → ${name}`);
        }
      } else {
        checkManual(name, relationship.name, relationship.using.manual_configuration);
      }
    }

    for (const field of table.computed_fields ?? []) checkComputedField(name, field);

    for (const { role, permission } of table.select_permissions ?? []) {
      checkRole(name, role);
      checkColumns(name, role, 'select', permission.columns);
      checkExpression(name, permission.filter, 'select filter', role, true);
      const selected = permission.columns === '*' ? [...columns] : permission.columns;
      for (const secret of SECRET_COLUMNS.filter((column) => selected.includes(column))) {
        report(name, 'secret-column', `select permission exposes ${secret}`, role);
      }
      const base = baseHasuraRoleOf(role);
      if (base && !BILLING_READERS.includes(base) && BILLING_COLUMNS[name]) {
        const billing = BILLING_COLUMNS[name]!;
        const exposed = billing.includes('*') ? selected : selected.filter((column) => billing.includes(column));
        if (exposed.length > 0) {
          report(name, 'billing-below-manager', `only ${BILLING_READERS.join(' and ')} read billing, but ${role} sees: ${exposed.join(', ')}`, role);
        }
      }
      for (const field of permission.computed_fields ?? []) {
        if (!computedField(table, field)) report(name, 'unknown-computed-field', `select permission names computed field ${field}, which the table does not define`, role);
      }
      if (!permission.filter || Object.keys(permission.filter).length === 0) {
        report(name, 'unfiltered-select', 'select permission has no filter: only Hasura\'s admin may read a whole table', role);
      } else if (tenantColumn && !requiresTenant(permission.filter, tenantColumn)) {
        report(name, 'tenant-filter-missing', `select filter does not require ${tenantColumn} = ${TENANT_SESSION_VARIABLE}`, role);
      }
      if (role === 'anonymous' && permission.allow_aggregations) {
        report(name, 'anonymous-aggregation', 'anonymous may aggregate', role);
      }
    }
    for (const { role, permission } of table.insert_permissions ?? []) {
      checkRole(name, role);
      checkColumns(name, role, 'insert', permission.columns);
      checkExpression(name, permission.check, 'insert check', role, true);
      for (const column of Object.keys(permission.set ?? {})) {
        if (!columns.has(column)) report(name, 'unknown-column', `insert preset names column ${column}, which does not exist`, role);
        else if (!catalog.privileges.get(name)!.insert.has(column)) {
          report(name, 'column-not-granted', `insert preset sets ${column}, which ${dbRole} may not INSERT`, role);
        }
      }
      if (role === 'anonymous') report(name, 'anonymous-write', 'anonymous may insert', role);
      if (tenantColumn) {
        if (!requiresTenant(permission.check, tenantColumn)) {
          report(name, 'tenant-check-missing', `insert check does not require ${tenantColumn} = ${TENANT_SESSION_VARIABLE}`, role);
        }
        if (!isSessionTenant(permission.set?.[tenantColumn])) {
          report(name, 'tenant-preset-missing', `insert does not preset ${tenantColumn} from ${TENANT_SESSION_VARIABLE}`, role);
        }
        if (permission.columns !== '*' && permission.columns.includes(tenantColumn)) {
          report(name, 'tenant-column-writable', `insert lets the client write ${tenantColumn}`, role);
        }
      }
      writable(name, role, 'insert', permission.columns);
    }
    for (const { role, permission } of table.update_permissions ?? []) {
      checkRole(name, role);
      checkColumns(name, role, 'update', permission.columns);
      checkExpression(name, permission.filter, 'update filter', role, true);
      checkExpression(name, permission.check, 'update check', role, true);
      if (role === 'anonymous') report(name, 'anonymous-write', 'anonymous may update', role);
      if (tenantColumn) {
        if (!requiresTenant(permission.filter, tenantColumn)) {
          report(name, 'tenant-filter-missing', `update filter does not require ${tenantColumn} = ${TENANT_SESSION_VARIABLE}`, role);
        }
        if (!requiresTenant(permission.check, tenantColumn)) {
          report(name, 'tenant-check-missing', `update check does not require ${tenantColumn} = ${TENANT_SESSION_VARIABLE}`, role);
        }
        if (permission.columns !== '*' && permission.columns.includes(tenantColumn)) {
          report(name, 'tenant-column-writable', `update lets the client write ${tenantColumn}`, role);
        }
      }
      writable(name, role, 'update', permission.columns);
    }
    for (const { role, permission } of table.delete_permissions ?? []) {
      checkRole(name, role);
      checkExpression(name, permission.filter, 'delete filter', role, true);
      if (!catalog.privileges.get(name)!.delete) {
        report(name, 'column-not-granted', `delete permission, but ${dbRole} may not DELETE from ${name}`, role);
      }
      if (role === 'anonymous') report(name, 'anonymous-write', 'anonymous may delete', role);
      if (tenantColumn && !requiresTenant(permission.filter, tenantColumn)) {
        report(name, 'tenant-filter-missing', `delete filter does not require ${tenantColumn} = ${TENANT_SESSION_VARIABLE}`, role);
      }
    }
  }

  // Read-only roles (read-only API keys, staff impersonation): what their base role reads,
  // exactly, and nothing written anywhere.
  for (const table of tables) {
    const name = table.table.name;
    for (const kind of ['insert', 'update', 'delete'] as const) {
      for (const { role } of table[`${kind}_permissions`] ?? []) {
        if (READ_ONLY_NAME.test(role)) report(name, 'read-only-write', `${kind} permission for a read-only role: it may only select`, role);
      }
    }
    const selects = new Map((table.select_permissions ?? []).map((entry) => [entry.role, entry.permission]));
    for (const base of BASE_HASURA_ROLES) {
      const twin = readOnlyHasuraRole(base);
      const [baseSelect, twinSelect] = [selects.get(base), selects.get(twin)];
      if (baseSelect === undefined && twinSelect === undefined) continue;
      if (baseSelect === undefined || twinSelect === undefined || canonical(baseSelect) !== canonical(twinSelect)) {
        report(name, 'read-only-select-differs', `its select permission must be exactly ${base}'s (${twinSelect ? 'it differs' : 'it has none'})`, twin);
      }
    }
  }

  // Every feature a plan names can be tested by a permission: its computed field on tenants.
  const tenantFields = byName.get('tenants')?.computed_fields ?? [];
  for (const feature of catalog.planFeatures) {
    const expected = featureFunction(feature);
    const field = tenantFields.find((candidate) => candidate.name === featureComputedField(feature));
    if (!field || field.definition.function.name !== expected.name || (field.definition.function.schema ?? 'public') !== expected.schema) {
      report(
        'tenants',
        'feature-without-computed-field',
        `plans.features names ${feature}, but tenants has no computed field ${featureComputedField(feature)} backed by ${expected.schema}.${expected.name}(tenants): add it to PLAN_FEATURES in scripts/hasura/registry.ts (and the function to a migration)`,
      );
    }
  }

  for (const name of catalog.columns.keys()) {
    if (byName.has(name) || internalTables[name] !== undefined) continue;
    const tenantColumn = catalog.tenantTables.get(name);
    report(
      name,
      'untracked-table',
      tenantColumn
        ? `holds tenant rows (${tenantColumn}) but is neither tracked in the metadata nor listed as internal in scripts/hasura/registry.ts`
        : 'is neither tracked in the metadata nor listed as internal in scripts/hasura/registry.ts',
    );
  }
  return problems;

  /** A scalar computed field: its function exists, takes this table's row, is not volatile, returns one scalar, and dbRole may run it. */
  function checkComputedField(name: string, field: NonNullable<TableMetadata['computed_fields']>[number]) {
    const qualifiedName = `${field.definition.function.schema ?? 'public'}.${field.definition.function.name}`;
    const fn = catalog.rowFunctions.get(qualifiedName);
    if (!fn || fn.rowTable !== name) {
      report(name, 'unknown-computed-field', `computed field ${field.name}: no function ${qualifiedName}(${name}) exists`);
    } else if (fn.volatility === 'v' || fn.returnsSet || !fn.returnsScalar) {
      report(name, 'unknown-computed-field', `computed field ${field.name}: ${qualifiedName} must be STABLE or IMMUTABLE and return one scalar`);
    } else if (!fn.executable) {
      report(name, 'column-not-granted', `computed field ${field.name}: ${dbRole} may not EXECUTE ${qualifiedName}`);
    }
  }

  function checkManual(name: string, relationship: string, manual: { remote_table: { name: string }; column_mapping: Record<string, string> } | undefined) {
    const remote = manual && catalog.columns.get(manual.remote_table.name);
    if (!manual || !remote) {
      report(name, 'unknown-relationship', `relationship ${relationship}: its remote table does not exist`);
      return;
    }
    for (const [local, remoteColumn] of Object.entries(manual.column_mapping)) {
      if (!catalog.columns.get(name)!.has(local) || !remote.has(remoteColumn)) {
        report(name, 'unknown-relationship', `relationship ${relationship}: ${name}.${local} → ${manual.remote_table.name}.${remoteColumn} does not exist`);
      }
    }
  }

  function writable(name: string, role: string, kind: 'insert' | 'update', columns: string[] | '*') {
    const serverOnly = SERVER_ONLY_COLUMNS[name] ?? [];
    const written = columns === '*' ? [...catalog.columns.get(name)!] : columns;
    for (const column of written.filter((candidate) => serverOnly.includes(candidate))) {
      report(name, 'server-only-writable', `${kind} lets the client write ${column}, which only the platform may set`, role);
    }
  }
}
