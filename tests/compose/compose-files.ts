/** Reading the compose files the way `docker compose` does, for the checks that run without Docker. */
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { expandSecrets } from '../../scripts/compose/secret-references.js';
import { parseConsumers, writeSecrets } from '../../scripts/compose/secrets.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export type ComposeFile = {
  name?: string;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  [key: string]: unknown;
};
export type Service = {
  image?: string;
  build?: unknown;
  profiles?: string[];
  restart?: string;
  ports?: Array<string | { published?: string | number; host_ip?: string }>;
  environment?: Record<string, string | number | boolean | null>;
  healthcheck?: { test?: string[] | string; disable?: boolean };
  depends_on?: Record<string, { condition?: string }> | string[];
  volumes?: Array<string | Record<string, unknown>>;
  read_only?: boolean;
  logging?: unknown;
  deploy?: { replicas?: number; resources?: { limits?: Record<string, unknown> } };
  command?: string[] | string;
  entrypoint?: string[] | string;
  [key: string]: unknown;
};

/** Parses a compose file with YAML merge keys (`<<: *anchor`) enabled, as compose does. */
export function loadCompose(file: string): ComposeFile {
  return parse(readFileSync(path.join(ROOT, file), 'utf8'), { merge: true }) as ComposeFile;
}

/** Keys whose sequences an override replaces; every other sequence is appended to (compose's merge rules). */
const REPLACED = new Set(['command', 'entrypoint', 'test']);
const isMap = (value: unknown): value is Record<string, unknown> => !!value && typeof value === 'object' && !Array.isArray(value);

export function mergeValues(base: unknown, override: unknown, key = ''): unknown {
  if (isMap(base) && isMap(override)) {
    const merged: Record<string, unknown> = { ...base };
    for (const [name, value] of Object.entries(override)) merged[name] = name in base ? mergeValues(base[name], value, name) : value;
    return merged;
  }
  if (Array.isArray(base) && Array.isArray(override) && !REPLACED.has(key)) {
    const seen = new Set(base.map((item) => JSON.stringify(item)));
    return [...base, ...override.filter((item) => !seen.has(JSON.stringify(item)))];
  }
  return override;
}

/** `docker compose -f base -f override`: the override merged over the base. */
export const mergeCompose = (base: ComposeFile, override: ComposeFile): ComposeFile => mergeValues(base, override) as ComposeFile;

/** The raw text of the compose files, for the variables they interpolate. */
export const composeText = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

/** Every variable a compose file interpolates (`${VAR…}` or `$VAR`; `$$` is a literal dollar). */
export function interpolatedVariables(text: string): string[] {
  const unescaped = text.replace(/\$\$/g, '');
  const names = new Set<string>();
  for (const match of unescaped.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)/g)) names.add(match[1] ?? match[2]!);
  return [...names].sort();
}

/** The variables .env.example documents: `VAR=…`, or commented out as `# VAR=…` for optional ones. */
export function envExample(): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of readFileSync(path.join(ROOT, '.env.example'), 'utf8').split('\n')) {
    const match = /^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match) values.set(match[2]!, match[1] ? '' : match[3]!);
  }
  return values;
}

/** Compose's interpolation of one value: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, ${VAR:+alt}, $VAR, $$. */
export function interpolate(value: string, env: ReadonlyMap<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, name, operator, argument, bare) => {
    if (whole === '$$') return '$';
    if (bare) return env.get(bare) ?? '';
    const current = env.get(name);
    const set = current !== undefined && (current !== '' || !String(operator ?? '').startsWith(':'));
    switch (operator) {
      case ':-':
      case '-':
        return set ? current! : argument;
      case ':?':
      case '?':
        if (!set) throw new Error(`${name}: ${argument}`);
        return current!;
      case ':+':
      case '+':
        return set ? argument : '';
      default:
        return current ?? '';
    }
  });
}

/** A service's environment with the .env values interpolated, as the container would see it. */
export function serviceEnvironment(service: Service, env: ReadonlyMap<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(service.environment ?? {}).map(([name, value]) => [name, interpolate(String(value ?? ''), env)]));
}

/** Where a service's secrets volume is mounted, and where the job mounts consumers' volumes. */
export const SECRETS_MOUNT = '/run/tenantry/secrets';
export const CONSUMERS_MOUNT = '/run/tenantry/for';

/** The `secrets-<consumer>` volume a service mounts at SECRETS_MOUNT, if any. */
export function secretsVolumeOf(service: Service): string | undefined {
  for (const volume of service.volumes ?? []) {
    const match = typeof volume === 'string' ? /^(secrets-[a-z0-9-]+):(\/[^:]+):ro$/.exec(volume) : null;
    if (match && match[2] === SECRETS_MOUNT) return match[1];
  }
  return undefined;
}

/**
 * The secrets job of `file` run into `root` with the .env values `env` (no Docker: the same
 * module): its own volume becomes <root>/secrets, each consumer's volume <root>/<volume name>.
 */
export function runSecretsJob(file: ComposeFile, env: ReadonlyMap<string, string>, root: string) {
  const job = file.services.secrets!;
  const jobEnv = serviceEnvironment(job, env);
  const consumersRoot = path.join(root, 'for');
  const result = writeSecrets(path.join(root, 'secrets'), jobEnv, jobEnv.TENANTRY_SECRETS_REQUIRED === 'true', {
    root: consumersRoot,
    secrets: parseConsumers(jobEnv.TENANTRY_SECRETS_FOR ?? ''),
  });
  // The job mounts volume secrets-<c> at /run/tenantry/for/<c>: the test keeps the same names.
  for (const volume of job.volumes ?? []) {
    const match = typeof volume === 'string' ? /^(secrets-[a-z0-9-]+):\/run\/tenantry\/for\/([a-z0-9-]+)$/.exec(volume) : null;
    if (match && !existsSync(path.join(root, match[1]!))) symlinkSync(path.join(consumersRoot, match[2]!), path.join(root, match[1]!));
  }
  return result;
}

/**
 * A service's environment as its process sees it: compose's interpolation, then the
 * `${NAME}` secret references resolved from its own secrets volume, as runSecretsJob filled it.
 */
export function containerEnvironment(service: Service, env: ReadonlyMap<string, string>, root: string): Record<string, string> {
  const values: NodeJS.ProcessEnv = serviceEnvironment(service, env);
  const volume = secretsVolumeOf(service);
  expandSecrets(values, volume ? path.join(root, volume) : path.join(root, 'no-secrets-volume'));
  return values as Record<string, string>;
}
