#!/usr/bin/env node
// `npm run build`, around tsc: `--clean` empties dist/ first (a file deleted from the sources
// must not live on in an image); without it, copies the data files the compiled code reads
// at run time into dist/, where the code looks for them (paths relative to its own
// location, as in the checkout), and writes the compiled CLI's launcher. Plain JavaScript:
// it runs before anything is compiled.
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';

const root = path.resolve(import.meta.dirname, '../..');
const dist = path.join(root, 'dist');

/** Read at run time, relative to the compiled modules: the migration runner and the edge renderer. */
export const RUNTIME_DATA = ['hasura/migrations', 'nginx/templates', 'nginx/lua'];

/** bin/tenantry.mjs runs the TypeScript through tsx, a dev dependency; the compiled CLI needs neither. */
const LAUNCHER = `#!/usr/bin/env node
// The compiled \`tenantry\` CLI (written by \`npm run build\`; the checkout's bin/tenantry.mjs runs the TypeScript).
await import('../services/cli/src/main.js');
`;

if (process.argv.includes('--clean')) {
  rmSync(dist, { recursive: true, force: true });
} else {
  for (const directory of RUNTIME_DATA) {
    cpSync(path.join(root, directory), path.join(dist, directory), { recursive: true });
  }
  mkdirSync(path.join(dist, 'bin'), { recursive: true });
  writeFileSync(path.join(dist, 'bin/tenantry.mjs'), LAUNCHER, { mode: 0o755 });
}
