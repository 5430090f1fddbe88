/**
 * The rule shared by scripts/compose/expand-secrets.ts (our image) and, in shell,
 * docker/expand-secrets.sh (Hasura, MinIO): each `${NAME}` in an environment value becomes
 * the content of <directory>/NAME, the file the one-shot `secrets` service wrote.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export const DEFAULT_SECRETS_DIR = '/run/tenantry/secrets';

/** The secret names a value refers to. */
export const secretReferences = (value: string): string[] => [...value.matchAll(REFERENCE)].map((match) => match[1]!);

/** Resolves the references in place; a reference without its file is an error naming both. */
export function expandSecrets(env: NodeJS.ProcessEnv, directory: string): void {
  for (const [name, value] of Object.entries(env)) {
    if (!value?.includes('${')) continue;
    env[name] = value.replace(REFERENCE, (_reference, secret: string) => {
      const file = path.join(directory, secret);
      if (!existsSync(file)) throw new Error(`${name} refers to \${${secret}}, but ${file} does not exist (did the secrets service run?)`);
      return readFileSync(file, 'utf8');
    });
  }
}
