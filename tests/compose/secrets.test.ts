import { spawnSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { secretReferences, expandSecrets } from '../../scripts/compose/secret-references.js';
import { parseConsumers, SECRETS, SecretsError, writeSecrets } from '../../scripts/compose/secrets.js';
import { authConfigSchema } from '../../services/auth/src/config.js';
import { billingConfigSchema } from '../../services/billing/src/config.js';
import { readConfig } from '../../services/shared/src/config.js';
import {
  composeText,
  containerEnvironment,
  envExample,
  interpolate,
  loadCompose,
  mergeCompose,
  ROOT,
  runSecretsJob,
  secretsVolumeOf,
  SECRETS_MOUNT,
  serviceEnvironment,
  type ComposeFile,
  type Service,
} from './compose-files.js';

const base = loadCompose('docker-compose.yml');
const merged = mergeCompose(base, loadCompose('docker-compose.prod.yml'));
const work = mkdtempSync(path.join(os.tmpdir(), 'compose-secrets-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let scratchCount = 0;
const scratchDir = () => path.join(work, `secrets-${++scratchCount}`);

/** Every string compose interpolates in a file, with `env` as the .env: throws where compose refuses. */
function interpolateAll(file: ComposeFile, env: ReadonlyMap<string, string>): void {
  const visit = (value: unknown): void => {
    if (typeof value === 'string') interpolate(value, env);
    else if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') Object.values(value).forEach(visit);
  };
  visit(file);
}

/** Which variables compose would refuse to start without, given `env`. */
function refusedVariables(file: ComposeFile, env: ReadonlyMap<string, string>): string[] {
  const refused = new Set<string>();
  const current = new Map(env);
  for (;;) {
    try {
      interpolateAll(file, current);
      return [...refused].sort();
    } catch (error) {
      const name = /^([A-Z0-9_]+): /.exec((error as Error).message)?.[1];
      if (!name || refused.has(name)) throw error;
      refused.add(name);
      current.set(name, 'given');
    }
  }
}

const services = (file: ComposeFile) => Object.entries(file.services) as Array<[string, Service]>;
/** Services whose environment names a secret (after compose's interpolation: `$${NAME}` → `${NAME}`). */
const secretUsers = (file: ComposeFile, env: ReadonlyMap<string, string>) =>
  services(file)
    .map(([name, service]) => [name, service, Object.values(serviceEnvironment(service, env)).flatMap(secretReferences)] as const)
    .filter(([, , references]) => references.length > 0);

describe('a fresh checkout: docker compose up -d without .env', () => {
  test('the development file interpolates with no .env at all (before: POSTGRES_PASSWORD and ten more were required)', () => {
    expect(refusedVariables(base, new Map())).toEqual([]);
  });

  test('the production override refuses to start without real secrets, naming each', () => {
    expect(refusedVariables(merged, new Map())).toEqual(
      [...Object.keys(SECRETS), 'AUTH_ISSUER', 'BASE_DOMAIN', 'BILLING_RETURN_URL', 'PUBLIC_URL', 'SMTP_URL'].sort(),
    );
    // .env.example sets no secret: copying it unchanged is not enough for production either.
    expect(refusedVariables(merged, envExample())).toEqual(expect.arrayContaining(Object.keys(SECRETS)));
    expect(composeText('docker-compose.prod.yml')).toMatch(/\$\{POSTGRES_PASSWORD:\?set POSTGRES_PASSWORD in \.env/);
    expect(Object.keys(SECRETS)).toEqual(expect.arrayContaining(['STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRETS']));
  });

  test('the secrets job generates every secret once, keeps them across runs, and lets .env replace one', () => {
    const dir = scratchDir();
    const first = runSecretsJob(base, new Map(), dir);
    expect(Object.values(first.sources).every((source) => source === 'generated' || source === 'derived')).toBe(true);
    const master = path.join(dir, 'secrets');
    const snapshot = () => Object.fromEntries(readdirSync(master).map((name) => [name, readFileSync(path.join(master, name), 'utf8')]));
    const generated = snapshot();
    expect(Object.keys(generated).sort()).toEqual([...Object.keys(SECRETS), 'HASURA_GRAPHQL_JWT_SECRET'].sort());
    for (const name of Object.keys(SECRETS)) expect(generated[name]!.length, name).toBeGreaterThanOrEqual(16);
    expect(new Set(Object.values(generated)).size).toBe(Object.keys(generated).length);
    // Readable by the stack's containers, which run as other users than the job.
    expect(statSync(path.join(dir, 'secrets-postgres', 'POSTGRES_PASSWORD')).mode & 0o777).toBe(0o644);
    // The full set: the job's alone.
    expect(statSync(master).mode & 0o777).toBe(0o700);

    const second = runSecretsJob(base, new Map(), dir);
    expect(second.sources.POSTGRES_PASSWORD).toBe('kept');
    expect(snapshot()).toEqual(generated);

    const third = runSecretsJob(base, new Map([['APP_SERVICE_DB_PASSWORD', 'chosen-in-dotenv-123']]), dir);
    expect(third.sources.APP_SERVICE_DB_PASSWORD).toBe('environment');
    expect(snapshot()).toEqual({ ...generated, APP_SERVICE_DB_PASSWORD: 'chosen-in-dotenv-123' });
    expect(readFileSync(path.join(dir, 'secrets-auth', 'APP_SERVICE_DB_PASSWORD'), 'utf8')).toBe('chosen-in-dotenv-123');
  });

  test('generated secrets are what their consumers accept: the auth service’s signing keys, the resolver secret, Hasura’s JWT settings, the billing service’s Stripe key and signing secret', () => {
    const dir = scratchDir();
    runSecretsJob(base, new Map(), dir);
    const authEnv = containerEnvironment(base.services.auth!, new Map(), dir);
    const auth = readConfig(authConfigSchema, { ...authEnv, DATABASE_URL: authEnv.DATABASE_URL });
    expect(auth.AUTH_SIGNING_KEYS).toHaveLength(1);
    expect(createPrivateKey(auth.AUTH_SIGNING_KEYS![0]!.privateKeyPem).asymmetricKeyType).toBe('rsa');
    expect(containerEnvironment(base.services.resolver!, new Map(), dir).RESOLVER_SECRET).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    expect(JSON.parse(containerEnvironment(base.services.hasura!, new Map(), dir).HASURA_GRAPHQL_JWT_SECRET!)).toEqual({
      jwk_url: 'http://auth:4002/auth/.well-known/jwks.json',
      issuer: auth.AUTH_ISSUER,
      audience: auth.AUTH_AUDIENCE,
      claims_namespace: 'https://hasura.io/jwt/claims',
    });
    const billing = readConfig(billingConfigSchema, containerEnvironment(base.services.billing!, new Map(), dir));
    expect(billing.STRIPE_SECRET_KEY).toMatch(/^sk_test_/);
    expect(billing.STRIPE_WEBHOOK_SECRETS).toEqual([expect.stringMatching(/^whsec_.{16,}$/)]);
    expect(billing.STRIPE_API_BASE).toBe('http://stripe-mock:12111');
  });

  test('TENANTRY_SECRETS_FOR is read strictly: an unknown secret or a malformed line stops the job', () => {
    expect(() => parseConsumers('auth: APP_SERVICE_DB_PASSWORD POSTGRES_PASSWORDD')).toThrow(/auth names unknown secrets: POSTGRES_PASSWORDD/);
    expect(() => parseConsumers('auth APP_SERVICE_DB_PASSWORD')).toThrow(/cannot read "auth APP_SERVICE_DB_PASSWORD"/);
    expect(parseConsumers('\n  a: POSTGRES_PASSWORD\n b-c: S3_ACCESS_KEY  S3_SECRET_KEY \n')).toEqual({ a: ['POSTGRES_PASSWORD'], 'b-c': ['S3_ACCESS_KEY', 'S3_SECRET_KEY'] });
  });

  test('a secret a consumer no longer names leaves its volume on the next run', () => {
    const root = scratchDir();
    const consumers = (names: string[]) => ({ root: path.join(root, 'for'), secrets: { auth: names } });
    writeSecrets(path.join(root, 'secrets'), {}, false, consumers(['APP_SERVICE_DB_PASSWORD', 'POSTGRES_PASSWORD']));
    writeSecrets(path.join(root, 'secrets'), {}, false, consumers(['APP_SERVICE_DB_PASSWORD']));
    expect(readdirSync(path.join(root, 'for', 'auth'))).toEqual(['APP_SERVICE_DB_PASSWORD']);
  });

  test('production mode generates nothing and refuses .env.example placeholders', () => {
    const required = (env: Record<string, string>) => () => writeSecrets(scratchDir(), env, true);
    expect(required({})).toThrow(SecretsError);
    expect(required({})).toThrow(/POSTGRES_PASSWORD is not set; .*AUTH_SIGNING_KEYS is not set/);
    const filled = Object.fromEntries(Object.keys(SECRETS).map((name) => [name, `real-${name.toLowerCase()}-value`]));
    expect(required({ ...filled, HASURA_DB_PASSWORD: 'change-me-hasura' })).toThrow(/HASURA_DB_PASSWORD is still the \.env\.example placeholder/);
    const dir = scratchDir();
    expect(Object.values(writeSecrets(dir, filled, true).sources).filter((source) => source !== 'environment')).toEqual(['derived']);
    // And the merged files really run the job that way.
    expect(serviceEnvironment(merged.services.secrets!, new Map(Object.entries(filled).concat([['AUTH_ISSUER', 'x']]))).TENANTRY_SECRETS_REQUIRED).toBe('true');
  });
});

describe.each([
  ['docker-compose.yml', base],
  ['docker-compose.yml + docker-compose.prod.yml', merged],
])('secret references in %s', (_name, file) => {
  const production = {
    AUTH_ISSUER: 'https://auth.example.com',
    SMTP_URL: 'smtp://mail:25',
    PUBLIC_URL: 'https://app.example.com',
    BASE_DOMAIN: 'example.com',
    BILLING_RETURN_URL: 'https://{host}/billing?checkout={result}',
  };
  const env = new Map([
    ...envExample(),
    ...Object.entries(production),
    ...Object.keys(SECRETS).map((name) => [name, `given-${name}`] as [string, string]),
  ]);

  test('every reference names a file the secrets job writes', () => {
    const written = [...Object.keys(SECRETS), 'HASURA_GRAPHQL_JWT_SECRET'];
    for (const [name, , references] of secretUsers(file, env)) {
      for (const reference of references) expect(written, `${name} → \${${reference}}`).toContain(reference);
    }
  });

  test('no secret is a plain value in the compose environment of a long-running service (only references)', () => {
    const values = new Set(Object.keys(SECRETS).map((name) => `given-${name}`));
    for (const [name, service] of services(file)) {
      if (name === 'secrets') continue;
      for (const [variable, value] of Object.entries(serviceEnvironment(service, env))) {
        for (const secret of values) expect(value, `${name}.${variable}`).not.toContain(secret);
      }
    }
  });

  test('each service mounts its own secrets volume, holding exactly the secrets it names (a compromised auth service cannot read the superuser password)', () => {
    const root = scratchDir();
    runSecretsJob(file, env, root);
    const jobEnv = serviceEnvironment(file.services.secrets!, env);
    const lists = parseConsumers(jobEnv.TENANTRY_SECRETS_FOR!);
    /** What each service needs: its ${NAME} references, Postgres's *_FILE, PgBouncer's cat in its entry point. */
    const needs = (service: Service): string[] => {
      const values = Object.values(serviceEnvironment(service, env));
      const files = values.filter((value) => value.startsWith(`${SECRETS_MOUNT}/`)).map((value) => path.basename(value));
      const entry = JSON.stringify(service.entrypoint ?? []).replace(/\$\$/g, '$');
      const read = [...entry.matchAll(new RegExp(`cat ${SECRETS_MOUNT}/([A-Z0-9_]+)`, 'g'))].map((match) => match[1]!);
      return [...new Set([...values.flatMap(secretReferences), ...files, ...read])].sort();
    };
    const byVolume = new Map<string, Set<string>>();
    for (const [name, service] of services(file)) {
      if (name === 'secrets') continue;
      const mounts = JSON.stringify(service.volumes ?? []);
      expect(mounts, `${name} never mounts the full set`).not.toMatch(/"secrets:/);
      const needed = needs(service);
      const volume = secretsVolumeOf(service);
      if (needed.length === 0) {
        expect(volume, `${name} needs no secret`).toBeUndefined();
        continue;
      }
      expect(volume, `${name} mounts a secrets volume read-only at ${SECRETS_MOUNT}`).toBeTruthy();
      const set = byVolume.get(volume!) ?? new Set<string>();
      needed.forEach((secret) => set.add(secret));
      byVolume.set(volume!, set);
    }
    for (const [volume, needed] of byVolume) {
      const consumer = volume.slice('secrets-'.length);
      expect(lists[consumer]?.slice().sort(), `${volume}: what TENANTRY_SECRETS_FOR gives it`).toEqual([...needed].sort());
      expect(readdirSync(path.join(root, volume)).sort(), `${volume}: what the job wrote`).toEqual([...needed].sort());
      expect(file.volumes, volume).toHaveProperty(volume);
    }
    expect(Object.keys(lists).sort()).toEqual([...byVolume.keys()].map((volume) => volume.slice('secrets-'.length)).sort());
    // The auth service's volume, concretely.
    expect(readdirSync(path.join(root, 'secrets-auth')).sort()).toEqual(['APP_SERVICE_DB_PASSWORD', 'AUTH_SIGNING_KEYS', 'REDIS_PASSWORD', 'S3_ACCESS_KEY', 'S3_SECRET_KEY']);
    expect(readdirSync(path.join(root, 'secrets-storage')).sort()).toEqual(['APP_SERVICE_DB_PASSWORD', 'REDIS_PASSWORD', 'S3_ACCESS_KEY', 'S3_SECRET_KEY']);
    expect(readdirSync(path.join(root, 'secrets-billing')).sort()).toEqual(['APP_SERVICE_DB_PASSWORD', 'REDIS_PASSWORD', 'STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRETS']);
    expect(readdirSync(path.join(root, 'secrets-redis'))).toEqual(['REDIS_PASSWORD']);
  });

  test('every service naming a secret waits for the job and resolves references at start', () => {
    const dependsOnJob = (name: string): boolean => {
      const dependencies = Object.keys(file.services[name]!.depends_on ?? {});
      return dependencies.includes('secrets') || dependencies.some(dependsOnJob);
    };
    const minioEntrypoint = readFileSync(path.join(ROOT, 'docker/minio.Dockerfile'), 'utf8');
    const nodeImage = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    for (const [name, service] of secretUsers(file, env)) {
      expect(dependsOnJob(name), `${name} starts after the secrets job`).toBe(true);
      if (service.image?.startsWith('tenantry/services:')) {
        expect(nodeImage, name).toContain('ENV NODE_OPTIONS=--import=/app/scripts/compose/expand-secrets.js');
      } else if (service.image?.startsWith('tenantry/minio:')) {
        expect(minioEntrypoint).toContain('ENTRYPOINT ["/bin/sh", "/usr/local/bin/expand-secrets", "minio"]');
      } else {
        expect(service.entrypoint, name).toEqual(expect.arrayContaining(['/bin/sh', '/usr/local/bin/expand-secrets']));
        expect(service.volumes, name).toContain('./docker/expand-secrets.sh:/usr/local/bin/expand-secrets:ro');
      }
    }
    expect(dependsOnJob('postgres')).toBe(true);
    expect(file.services.postgres!.environment!.POSTGRES_PASSWORD_FILE).toBe(`${SECRETS_MOUNT}/POSTGRES_PASSWORD`);
  });

  test('Hasura keeps its image’s entry point (the cli-migrations script applies the metadata)', () => {
    expect([...(file.services.hasura!.entrypoint as string[]), ...(file.services.hasura!.command as string[])]).toEqual([
      '/bin/sh',
      '/usr/local/bin/expand-secrets',
      'docker-entrypoint.sh',
      'graphql-engine',
      'serve',
    ]);
  });
});

describe('docker/expand-secrets.sh resolves references exactly as the Node preload does', () => {
  const dir = scratchDir();
  const tricky = {
    PLAIN: 'abc123',
    SHELLISH: 'p@ss $(id) `uname` "q" \'s\' ${HOME} \\n;|&',
    SPACES: '  two  spaces  ',
  };
  for (const [name, value] of Object.entries(tricky)) {
    spawnSync('mkdir', ['-p', dir]);
    writeFileSync(path.join(dir, name), value);
  }
  const templates = {
    URL: 'postgresql://u:${PLAIN}@postgres:5432/db',
    TWO: '${SHELLISH}|${SPACES}',
    UNTOUCHED: 'no references, $HOME stays',
    JSON_VALUE: '{"a":"b"}',
  };

  test.each(['dash', 'bash'])('with %s', (shell) => {
    const result = spawnSync(shell, [path.join(ROOT, 'docker/expand-secrets.sh'), 'node', '-e', 'process.stdout.write(JSON.stringify(process.env))'], {
      env: { PATH: process.env.PATH, TENANTRY_SECRETS_DIR: dir, ...templates },
      encoding: 'utf8',
    });
    expect(result.status, result.stderr).toBe(0);
    const fromShell = JSON.parse(result.stdout) as Record<string, string>;
    const fromNode: NodeJS.ProcessEnv = { ...templates };
    expandSecrets(fromNode, dir);
    for (const name of Object.keys(templates)) expect(fromShell[name], name).toBe(fromNode[name]);
    expect(fromShell.URL).toBe('postgresql://u:abc123@postgres:5432/db');
    expect(fromShell.TWO).toBe(`${tricky.SHELLISH}|${tricky.SPACES}`);
  });

  test('a reference without its file stops the start, in both', () => {
    const result = spawnSync('sh', [path.join(ROOT, 'docker/expand-secrets.sh'), 'true'], {
      env: { PATH: process.env.PATH, TENANTRY_SECRETS_DIR: dir, DATABASE_URL: 'x:${MISSING}' },
      encoding: 'utf8',
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/DATABASE_URL refers to \$\{MISSING\}, but .*MISSING does not exist \(did the secrets service run\?\)/);
    expect(() => expandSecrets({ DATABASE_URL: 'x:${MISSING}' }, dir)).toThrow(/DATABASE_URL refers to \$\{MISSING\}/);
  });
});
