/**
 * Writes nginx/lua/tenantry/error_catalog.lua from the one error catalog
 * (services/shared/src/errors/catalog.ts), so the edge answers the same codes with the
 * same statuses as the services. `--check` fails when the committed file is stale
 * (tests/shared/error-catalog.test.ts runs it too).
 *
 *   npm run edge:catalog        (npm run edge:catalog:check: --check)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ERRORS } from '../../services/shared/src/errors/catalog.js';

export const ERROR_CATALOG_LUA = path.resolve(import.meta.dirname, '../../nginx/lua/tenantry/error_catalog.lua');

/** A Lua string literal: the catalog's messages are plain ASCII, and nothing else is accepted. */
function luaString(text: string): string {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new Error(`catalog text must be printable ASCII: ${JSON.stringify(text)}`);
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function renderErrorCatalogLua(): string {
  const entries = Object.entries(ERRORS).map(([code, [status, message]]) => {
    if (!/^[a-z][a-z0-9_]*$/.test(code)) throw new Error(`catalog code is not a Lua name: ${code}`);
    return `  ${code} = { status = ${status}, message = ${luaString(message)} },`;
  });
  return [
    '-- GENERATED from services/shared/src/errors/catalog.ts by scripts/edge/error-catalog.ts: do not edit.',
    '-- The one error catalog: code -> HTTP status and default message (tenantry.respond uses it).',
    'return {',
    ...entries,
    '}',
    '',
  ].join('\n');
}

/** Whether the committed Lua catalog is what the catalog generates. */
export function errorCatalogLuaIsCurrent(): boolean {
  try {
    return readFileSync(ERROR_CATALOG_LUA, 'utf8') === renderErrorCatalogLua();
  } catch {
    return false;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--check')) {
    if (!errorCatalogLuaIsCurrent()) {
      console.error(`${path.relative(process.cwd(), ERROR_CATALOG_LUA)} is stale: run npm run edge:catalog`);
      process.exit(1);
    }
  } else {
    writeFileSync(ERROR_CATALOG_LUA, renderErrorCatalogLua());
  }
}
