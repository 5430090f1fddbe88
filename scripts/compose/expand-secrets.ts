/**
 * Preloaded into every Node process of the image (NODE_OPTIONS=--import=…, see the
 * Dockerfile) before any of our code: resolves the `${NAME}` secret references compose
 * passes as `$${NAME}` (scripts/compose/secret-references.ts), so a service sees only the
 * secrets its own environment names.
 */
import { DEFAULT_SECRETS_DIR, expandSecrets } from './secret-references.js';

try {
  expandSecrets(process.env, process.env.TENANTRY_SECRETS_DIR || DEFAULT_SECRETS_DIR);
} catch (error) {
  process.stderr.write(`expand-secrets: ${(error as Error).message}\n`);
  process.exit(1);
}
