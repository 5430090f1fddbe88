/**
 * A service never imports another service: what two need lives in services/shared, which
 * imports no service. Every relative import of every TypeScript file under services/ is checked.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';

const servicesDir = path.resolve(import.meta.dirname, '../../services');

function typeScriptFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : typeScriptFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** The service a path lies in: the first directory under services/. */
const serviceOf = (file: string) => path.relative(servicesDir, file).split(path.sep)[0]!;

test('no service imports another service; shared imports none', () => {
  const crossings: string[] = [];
  for (const file of typeScriptFiles(servicesDir)) {
    const source = readFileSync(file, 'utf8');
    const from = serviceOf(file);
    for (const [, specifier] of source.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = path.resolve(path.dirname(file), specifier!);
      const relative = path.relative(servicesDir, target);
      const to = relative.startsWith('..') ? null : serviceOf(target);
      if (to === null || to === from) continue;
      if (to !== 'shared') crossings.push(`${path.relative(servicesDir, file)} imports ${specifier}`);
    }
  }
  expect(crossings).toEqual([]);
});
