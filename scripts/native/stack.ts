import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { Command } from 'commander';
import { z } from 'zod';
import { loadConfigOrExit, STACK_ENV_FILE } from '../../services/shared/src/config.js';
import { bootstrapDatabase, LOGIN_ROLES, roleUrl, type LoginRole } from '../../services/shared/src/db/bootstrap.js';
import { migrate } from '../../services/shared/src/db/migrations.js';
import { s3ConfigShape } from '../../services/shared/src/storage/location.js';
import { randomSecret } from './environment.js';
import { startEdge } from './edge.js';
import { isAlive, launch, startMinio, startPostgres, startRedis, startStripeMock, stopProcess, waitUntilReady, type NativeProcess } from './services.js';

const port = (fallback: number) => z.coerce.number().int().min(1).max(65535).default(fallback);
const config = loadConfigOrExit(
  z.object({
    STACK_DIR: z.string().default(path.dirname(STACK_ENV_FILE)),
    STACK_POSTGRES_PORT: port(55432),
    STACK_REDIS_PORT: port(56379),
    STACK_S3_PORT: port(59000),
    STACK_S3_CONSOLE_PORT: port(59001),
    STACK_STRIPE_PORT: port(12111),
    STACK_STRIPE_HTTPS_PORT: port(12112),
    STACK_RESOLVER_PORT: port(54001),
    STACK_AUTH_PORT: port(54002),
    STACK_BILLING_PORT: port(54003),
    STACK_STORAGE_PORT: port(54004),
    STACK_SMTP_PORT: port(54025),
    STACK_MAIL_HTTP_PORT: port(54080),
    EDGE_PORT: port(8080),
    // *.localhost resolves to loopback in curl and browsers: acme.tenantry.localhost just works.
    BASE_DOMAIN: z.string().default('tenantry.localhost'),
    // Hasura does not run natively: the edge answers 503 on /v1/graphql unless one is given.
    HASURA_UPSTREAM: z.string().default('127.0.0.1:8081'),
    // Where tenants' files live (the storage service, signup and the CLI read the same two).
    STORAGE_LAYOUT: s3ConfigShape.STORAGE_LAYOUT,
    STORAGE_SHARED_BUCKET: s3ConfigShape.STORAGE_SHARED_BUCKET,
    POSTGRES_DB: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/).default('tenantry'),
  }),
);

const files = {
  state: path.join(config.STACK_DIR, 'state.json'),
  secrets: path.join(config.STACK_DIR, 'secrets.json'),
  env: path.join(config.STACK_DIR, 'env'),
  logs: path.join(config.STACK_DIR, 'logs'),
};
/** stripe-mock accepts any well-formed test key. */
const STACK_STRIPE_SECRET_KEY = 'sk_test_tenantrynativestack';
const repositoryRoot = path.resolve(import.meta.dirname, '../..');
const migrationsDir = path.join(repositoryRoot, 'hasura/migrations/default');

interface Secrets {
  postgresSuperuser: string;
  /** AUTH_SIGNING_KEYS: kept, so tokens survive a restart of the stack. */
  authSigningKeys: string;
  resolver: string;
  edgePurge: string;
  /** STRIPE_WEBHOOK_SECRETS of the billing service: sign test events with it (.stack/env has it). */
  stripeWebhook: string;
  roles: Record<LoginRole, string>;
  s3AccessKey: string;
  s3SecretKey: string;
  /** The default Redis user's; its hash and the tenants' users live in .stack/redis/users.acl. */
  redisPassword: string;
}
interface ServiceState {
  name: string;
  pid: number;
  url: string;
}
interface StackState {
  startedAt: string;
  services: ServiceState[];
}

function readJson<T>(file: string): T | undefined {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : undefined;
}

/** Generated once per .stack directory, so the data survives stack:down / stack:up. */
function loadSecrets(): Secrets {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const fresh: Secrets = {
    postgresSuperuser: randomSecret(),
    authSigningKeys: JSON.stringify([{ kid: `stack-${Date.now()}`, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) }]),
    resolver: randomSecret(24),
    edgePurge: randomSecret(24),
    stripeWebhook: `whsec_${randomSecret(24)}`,
    roles: Object.fromEntries(LOGIN_ROLES.map((role) => [role, randomSecret()])) as Record<LoginRole, string>,
    s3AccessKey: `tenantry${randomSecret(4).toLowerCase().replace(/[^a-z0-9]/g, '')}`,
    s3SecretKey: randomSecret(24),
    redisPassword: randomSecret(24),
  };
  // A .stack from an older version keeps its secrets and gains the new ones.
  const secrets = { ...fresh, ...readJson<Partial<Secrets>>(files.secrets) };
  writeFileSync(files.secrets, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

/** A TypeScript service of this repository, run with tsx in the background. */
async function startNodeService(name: string, entry: string, port: number, env: Record<string, string>): Promise<NativeProcess> {
  const logFile = path.join(files.logs, `${name}.log`);
  const service = launch(name, process.execPath, ['--import', 'tsx', path.join(repositoryRoot, entry)], {
    port,
    dataDir: '',
    logFile,
    detached: true,
    env,
  });
  await waitUntilReady(name, service.child, logFile, async () => {
    const response = await fetch(`http://127.0.0.1:${port}/healthz`);
    if (!response.ok) throw new Error(`healthz answered ${response.status}`);
  });
  return service;
}

const running = (state: StackState | undefined) => state?.services.filter((service) => isAlive(service.pid)) ?? [];

/** The last lines of a service's log: why it stopped, most of the time. */
function logTail(name: string, lines = 5): string {
  const file = path.join(files.logs, `${name}.log`);
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).map((line) => `    ${line}`).join('\n');
}

/**
 * A stack whose services all run is left alone. When some stopped (killed, crashed, the
 * machine slept), say which and why, then restart the whole stack: the services depend on
 * each other's addresses and secrets, and a full start is what is known to work. Data is kept.
 */
async function stopPartialStack(previous: StackState | undefined): Promise<'running' | 'stopped'> {
  const services = previous?.services ?? [];
  const alive = running(previous);
  if (alive.length === 0) return 'stopped';
  if (alive.length === services.length) return 'running';
  for (const service of services.filter((candidate) => !alive.includes(candidate))) {
    const tail = logTail(service.name);
    console.log(`${service.name} (pid ${service.pid}) has stopped; its log ${path.join(files.logs, `${service.name}.log`)} ends with:\n${tail || '    (empty)'}`);
  }
  console.log(`restarting the stack (data in ${config.STACK_DIR} is kept): stopping ${alive.map((service) => service.name).join(', ')}`);
  await stopServices(alive);
  rmSync(files.state, { force: true });
  return 'stopped';
}

async function stopServices(services: ServiceState[]): Promise<void> {
  // Postgres last: nothing else depends on the others, but its shutdown is the slowest.
  await Promise.all(services.filter((service) => service.name !== 'postgres').map((service) => stopProcess(service.pid)));
  await Promise.all(services.filter((service) => service.name === 'postgres').map((service) => stopProcess(service.pid, 30_000)));
}

/** The stack's fixed ports: each must be free before anything starts, or its variable is named. */
async function requireFreePorts(): Promise<void> {
  const variables = Object.keys(config).filter((key) => key.endsWith('_PORT')) as Array<keyof typeof config>;
  const taken: string[] = [];
  await Promise.all(
    variables.map(
      (variable) =>
        new Promise<void>((resolve) => {
          const probe = createServer();
          probe.once('error', () => {
            taken.push(`${config[variable]} (${variable})`);
            resolve();
          });
          probe.listen(Number(config[variable]), '127.0.0.1', () => probe.close(() => resolve()));
        }),
    ),
  );
  if (taken.length > 0) {
    const [noun, verb] = taken.length === 1 ? ['port', 'is'] : ['ports', 'are'];
    throw new Error(`${noun} ${taken.sort().join(', ')} ${verb} in use by another program — stop it, or set the variable to a free port`);
  }
}

async function up(): Promise<void> {
  if ((await stopPartialStack(readJson<StackState>(files.state))) === 'running') {
    console.log('the stack is already running:');
    status({ json: false });
    return;
  }
  await requireFreePorts();
  mkdirSync(files.logs, { recursive: true, mode: 0o755 });
  const secrets = loadSecrets();
  const started: NativeProcess[] = [];
  const common = (name: string) => ({ dataDir: path.join(config.STACK_DIR, name), logFile: path.join(files.logs, `${name}.log`), detached: true });
  try {
    const postgres = await startPostgres({ ...common('postgres'), port: config.STACK_POSTGRES_PORT, superuserPassword: secrets.postgresSuperuser, durable: true });
    started.push(postgres);
    const redis = await startRedis({ ...common('redis'), port: config.STACK_REDIS_PORT, password: secrets.redisPassword });
    started.push(redis);
    const s3 = await startMinio({
      ...common('minio'),
      port: config.STACK_S3_PORT,
      consolePort: config.STACK_S3_CONSOLE_PORT,
      accessKey: secrets.s3AccessKey,
      secretKey: secrets.s3SecretKey,
    });
    started.push(s3);
    const stripe = await startStripeMock({ port: config.STACK_STRIPE_PORT, httpsPort: config.STACK_STRIPE_HTTPS_PORT, logFile: path.join(files.logs, 'stripe-mock.log'), detached: true });
    started.push(stripe);

    await bootstrapDatabase({ adminUrl: postgres.adminUrl, database: config.POSTGRES_DB, passwords: secrets.roles });
    const url = (role: LoginRole) => roleUrl(postgres.adminUrl, role, secrets.roles[role], config.POSTGRES_DB);
    const applied = await migrate({ databaseUrl: url('tenantry_owner'), directory: migrationsDir });

    const resolver = await startNodeService('resolver', 'services/resolver/src/main.ts', config.STACK_RESOLVER_PORT, {
      DATABASE_URL: url('app_service'),
      RESOLVER_PORT: String(config.STACK_RESOLVER_PORT),
      RESOLVER_SECRET: secrets.resolver,
    });
    started.push(resolver);
    const mailUrl = `http://127.0.0.1:${config.STACK_MAIL_HTTP_PORT}`;
    const smtpUrl = `smtp://127.0.0.1:${config.STACK_SMTP_PORT}`;
    const mail = await startNodeService('mail-catcher', 'scripts/native/mail-catcher.ts', config.STACK_MAIL_HTTP_PORT, {
      MAIL_CATCHER_SMTP_PORT: String(config.STACK_SMTP_PORT),
      MAIL_CATCHER_HTTP_PORT: String(config.STACK_MAIL_HTTP_PORT),
      MAIL_CATCHER_DIR: path.join(config.STACK_DIR, 'mail'),
      AUTH_URL: `http://127.0.0.1:${config.STACK_AUTH_PORT}`,
    });
    started.push(mail);
    // Every process that creates or purges a tenant's namespaces reads the same S3 settings.
    const s3Settings = {
      S3_ENDPOINT: s3.endpoint,
      S3_ACCESS_KEY: s3.accessKey,
      S3_SECRET_KEY: s3.secretKey,
      STORAGE_LAYOUT: config.STORAGE_LAYOUT,
      STORAGE_SHARED_BUCKET: config.STORAGE_SHARED_BUCKET,
    };
    const s3PublicEndpoint = `http://s3.${config.BASE_DOMAIN}:${config.EDGE_PORT}`;
    const auth = await startNodeService('auth', 'services/auth/src/main.ts', config.STACK_AUTH_PORT, {
      DATABASE_URL: url('app_service'),
      REDIS_URL: redis.url,
      AUTH_PORT: String(config.STACK_AUTH_PORT),
      AUTH_SIGNING_KEYS: secrets.authSigningKeys,
      SMTP_URL: smtpUrl,
      // No front end runs natively: mailed links open the mail catcher's pages, which post to auth.
      PUBLIC_URL: mailUrl,
      ...s3Settings,
    });
    started.push(auth);
    const authUrl = `http://127.0.0.1:${config.STACK_AUTH_PORT}`;
    const authJwksUrl = `${authUrl}/auth/.well-known/jwks.json`;
    const billing = await startNodeService('billing', 'services/billing/src/main.ts', config.STACK_BILLING_PORT, {
      DATABASE_URL: url('app_service'),
      REDIS_URL: redis.url,
      BILLING_PORT: String(config.STACK_BILLING_PORT),
      STRIPE_SECRET_KEY: STACK_STRIPE_SECRET_KEY,
      STRIPE_API_BASE: stripe.apiBase,
      STRIPE_WEBHOOK_SECRETS: secrets.stripeWebhook,
      AUTH_JWKS_URL: authJwksUrl,
      SMTP_URL: smtpUrl,
      BASE_DOMAIN: config.BASE_DOMAIN,
    });
    started.push(billing);
    const storage = await startNodeService('storage', 'services/storage/src/main.ts', config.STACK_STORAGE_PORT, {
      DATABASE_URL: url('app_service'),
      REDIS_URL: redis.url,
      STORAGE_PORT: String(config.STACK_STORAGE_PORT),
      ...s3Settings,
      // Presigned URLs are signed for the host clients send them to: the edge's S3 host.
      S3_PUBLIC_ENDPOINT: s3PublicEndpoint,
      // MinIO answers STS AssumeRole on its S3 port.
      S3_STS_ENDPOINT: s3.endpoint,
      AUTH_JWKS_URL: authJwksUrl,
    });
    started.push(storage);
    const edge = await startEdge({
      runtimeDir: path.join(config.STACK_DIR, 'edge'),
      detached: true,
      env: {
        ...process.env,
        EDGE_PORT: String(config.EDGE_PORT),
        BASE_DOMAIN: config.BASE_DOMAIN,
        HASURA_UPSTREAM: config.HASURA_UPSTREAM,
        AUTH_UPSTREAM: `127.0.0.1:${config.STACK_AUTH_PORT}`,
        BILLING_UPSTREAM: `127.0.0.1:${config.STACK_BILLING_PORT}`,
        STORAGE_UPSTREAM: `127.0.0.1:${config.STACK_STORAGE_PORT}`,
        S3_UPSTREAM: `127.0.0.1:${config.STACK_S3_PORT}`,
        RESOLVER_UPSTREAM: `127.0.0.1:${config.STACK_RESOLVER_PORT}`,
        RESOLVER_SECRET: secrets.resolver,
        EDGE_PURGE_SECRET: secrets.edgePurge,
        REDIS_URL: redis.url,
      },
    });
    started.push(edge);

    const state: StackState = {
      startedAt: new Date().toISOString(),
      services: [
        { name: 'postgres', pid: postgres.pid, url: `postgresql://127.0.0.1:${config.STACK_POSTGRES_PORT}/${config.POSTGRES_DB}` },
        // Without the password: state.json is not a secrets file (.stack/env has the full URL).
        { name: 'redis', pid: redis.pid, url: `redis://127.0.0.1:${config.STACK_REDIS_PORT}` },
        { name: 'minio', pid: s3.pid, url: s3.endpoint },
        { name: 'stripe-mock', pid: stripe.pid, url: stripe.apiBase },
        { name: 'resolver', pid: resolver.pid, url: `http://127.0.0.1:${config.STACK_RESOLVER_PORT}` },
        { name: 'mail-catcher', pid: mail.pid, url: `${mailUrl} (caught mail and its links; SMTP ${smtpUrl})` },
        { name: 'auth', pid: auth.pid, url: `${authUrl}/auth` },
        { name: 'billing', pid: billing.pid, url: `http://127.0.0.1:${config.STACK_BILLING_PORT}/billing` },
        { name: 'storage', pid: storage.pid, url: `http://127.0.0.1:${config.STACK_STORAGE_PORT}/storage (files at ${s3PublicEndpoint})` },
        { name: 'edge', pid: edge.pid, url: edge.url },
      ],
    };
    writeFileSync(files.state, JSON.stringify(state, null, 2));
    writeFileSync(
      files.env,
      [
        '# Written by `npm run stack:up`: addresses and credentials of the native stack.',
        `DATABASE_URL=${url('tenantry_owner')}`,
        `DATABASE_ADMIN_URL=${postgres.adminUrl}`,
        `HASURA_DATABASE_URL=${url('hasura_app')}`,
        `APP_SERVICE_DATABASE_URL=${url('app_service')}`,
        `PLATFORM_ADMIN_DATABASE_URL=${url('platform_admin')}`,
        `POSTGRES_DB=${config.POSTGRES_DB}`,
        `REDIS_URL=${redis.url}`,
        `S3_ENDPOINT=${s3.endpoint}`,
        `S3_ACCESS_KEY=${s3.accessKey}`,
        `S3_SECRET_KEY=${s3.secretKey}`,
        `S3_PUBLIC_ENDPOINT=${s3PublicEndpoint}`,
        `S3_STS_ENDPOINT=${s3.endpoint}`,
        `STORAGE_LAYOUT=${config.STORAGE_LAYOUT}`,
        `STORAGE_SHARED_BUCKET=${config.STORAGE_SHARED_BUCKET}`,
        `STRIPE_API_BASE=${stripe.apiBase}`,
        `STRIPE_SECRET_KEY=${STACK_STRIPE_SECRET_KEY}`,
        `STRIPE_WEBHOOK_SECRETS=${secrets.stripeWebhook}`,
        `EDGE_PORT=${config.EDGE_PORT}`,
        `EDGE_URL=${edge.url}`,
        `BASE_DOMAIN=${config.BASE_DOMAIN}`,
        `EDGE_PURGE_SECRET=${secrets.edgePurge}`,
        `RESOLVER_SECRET=${secrets.resolver}`,
        `AUTH_URL=${authUrl}`,
        `BILLING_URL=http://127.0.0.1:${config.STACK_BILLING_PORT}`,
        `STORAGE_URL=http://127.0.0.1:${config.STACK_STORAGE_PORT}`,
        `SMTP_URL=${smtpUrl}`,
        `PUBLIC_URL=${mailUrl}`,
        `MAIL_URL=${mailUrl}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    console.log(`migrations: ${applied.length === 0 ? 'up to date' : `${applied.length} applied`}`);
    status({ json: false });
    console.log(`\nenvironment for the CLI and curl: ${files.env} (source it with: set -a; . ${path.relative(process.cwd(), files.env)}; set +a)`);
  } catch (error) {
    await Promise.all(started.map((service) => stopProcess(service.pid)));
    const failed = /^(\S+) did not become ready/.exec((error as Error).message)?.[1];
    const tail = failed ? logTail(failed) : '';
    if (tail) console.error(`${failed}'s log ends with:\n${tail}`);
    throw error;
  }
}

async function down(options: { purge?: boolean }): Promise<void> {
  const state = readJson<StackState>(files.state);
  const alive = running(state);
  await stopServices(alive);
  rmSync(files.state, { force: true });
  console.log(alive.length === 0 ? 'the stack was not running' : `stopped ${alive.map((service) => service.name).join(', ')}`);
  if (options.purge) {
    rmSync(config.STACK_DIR, { recursive: true, force: true });
    console.log(`removed ${config.STACK_DIR}`);
  }
}

function status(options: { json?: boolean }): void {
  const state = readJson<StackState>(files.state);
  const rows = (state?.services ?? []).map((service) => ({ ...service, running: isAlive(service.pid) }));
  if (options.json) {
    console.log(JSON.stringify({ running: rows.length > 0 && rows.every((row) => row.running), services: rows }, null, 2));
  } else if (rows.length === 0) {
    console.log('the stack is not running (start it with `npm run stack:up`)');
  } else {
    for (const row of rows) console.log(`${row.name.padEnd(12)} ${row.running ? 'running' : 'STOPPED'}  pid ${String(row.pid).padEnd(8)} ${row.url}`);
  }
  if (rows.length === 0 || rows.some((row) => !row.running)) process.exitCode = 1;
}

const program = new Command('stack').description(
  'the native stack: Postgres, Redis, MinIO, stripe-mock, the tenant resolver, auth, billing, storage and the edge on loopback, state in .stack/',
);
program.command('up').description('start the stack in the background, bootstrap and migrate the database').action(up);
program.command('down').description('stop the stack (data is kept)').option('--purge', 'also delete .stack/ with all data').action(down);
program.command('status').description('show what runs where').option('--json', 'print JSON').action(status);
program.parseAsync().catch((error: Error) => {
  console.error(`stack: ${error.message}`);
  process.exit(1);
});
