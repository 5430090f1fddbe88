/**
 * The compose stack for the end-to-end suite: the project's own docker-compose.yml with a
 * small override (tests/e2e/docker-compose.e2e.yml) that publishes Hasura on loopback for
 * the admin-only steps (introspection for codegen, the metadata consistency check).
 */
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Why the suite cannot run here, or null when a Docker engine with compose answers. Fast when there is no engine. */
export function dockerUnavailable(): string | null {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return 'no Docker engine answers (no DOCKER_HOST, no /var/run/docker.sock)';
  const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 5000 });
  if (info.status !== 0) return `no Docker engine answers (docker info: ${(info.stderr || info.error?.message || '').trim().split('\n')[0]})`;
  const compose = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8', timeout: 5000 });
  if (compose.status !== 0) return 'the docker compose plugin is missing';
  return null;
}

export interface Stack {
  project: string;
  edgeUrl: string;
  hasuraUrl: string;
  baseDomain: string;
  env: Record<string, string>;
  compose(args: string[], options?: { stdin?: string }): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** `docker compose run --rm tenantry …`: the CLI inside the stack, as platform_admin. */
  cli(args: string[], stdin?: string): Promise<string>;
  down(): Promise<void>;
}

async function answersWithin(timeoutMs: number, urls: string[]): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (const url of urls) {
    for (;;) {
      const ok = await fetch(url, { signal: AbortSignal.timeout(3000) }).then((response) => response.ok, () => false);
      if (ok) break;
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  return true;
}

const secret = (bytes = 18) => randomBytes(bytes).toString('base64url');

export async function startStack(): Promise<Stack> {
  const project = `tenantry-e2e-${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenantry-e2e-'));
  const [edgePort, hasuraPort] = [await getPort(), await getPort()];
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const issuer = 'https://auth.e2e.test';
  const baseDomain = 'tenantry.test';
  const env: Record<string, string> = {
    POSTGRES_DB: 'tenantry',
    POSTGRES_PASSWORD: secret(),
    TENANTRY_OWNER_DB_PASSWORD: secret(),
    HASURA_DB_PASSWORD: secret(),
    APP_SERVICE_DB_PASSWORD: secret(),
    PLATFORM_ADMIN_DB_PASSWORD: secret(),
    S3_ACCESS_KEY: secret(9),
    S3_SECRET_KEY: secret(),
    AUTH_ISSUER: issuer,
    AUTH_AUDIENCE: 'tenantry',
    AUTH_SIGNING_KEYS: JSON.stringify([{ kid: 'e2e-1', privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) }]),
    SMTP_URL: 'smtp://127.0.0.1:1025',
    PUBLIC_URL: `https://app.${baseDomain}`,
    HASURA_GRAPHQL_JWT_SECRET: JSON.stringify({
      jwk_url: 'http://auth:4002/auth/.well-known/jwks.json',
      issuer,
      audience: 'tenantry',
      claims_namespace: 'https://hasura.io/jwt/claims',
    }),
    HASURA_GRAPHQL_ADMIN_SECRET: secret(),
    HASURA_METADATA_DB: 'hasura_metadata',
    EDGE_PORT: String(edgePort),
    E2E_HASURA_PORT: String(hasuraPort),
    BASE_DOMAIN: baseDomain,
    RESOLVER_SECRET: secret(),
    EDGE_PURGE_SECRET: secret(),
    LOG_LEVEL: 'info',
  };
  const envFile = path.join(dir, '.env');
  // Compose's .env format: one KEY=value a line, taken literally (no quotes needed for JSON).
  writeFileSync(envFile, Object.entries(env).map(([key, value]) => `${key}=${value.replace(/\n/g, '\\n')}`).join('\n') + '\n', { mode: 0o600 });
  const files = ['-f', path.join(ROOT, 'docker-compose.yml'), '-f', path.join(ROOT, 'tests/e2e/docker-compose.e2e.yml')];

  const compose: Stack['compose'] = (args, options = {}) =>
    new Promise((resolve, reject) => {
      const child = spawn('docker', ['compose', '-p', project, '--env-file', envFile, '--project-directory', ROOT, ...files, ...args], {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => (stdout += chunk));
      child.stderr.on('data', (chunk) => (stderr += chunk));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(options.stdin ?? '');
    });

  const stack: Stack = {
    project,
    edgeUrl: `http://127.0.0.1:${edgePort}`,
    hasuraUrl: `http://127.0.0.1:${hasuraPort}`,
    baseDomain,
    env,
    compose,
    async cli(args, stdin) {
      // The README's way: the compose file's `tenantry` tool service.
      const result = await compose(['run', '--rm', '-T', '--no-deps', 'tenantry', ...args], { stdin });
      if (result.code !== 0) throw new Error(`tenantry ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
      return result.stdout;
    },
    async down() {
      await compose(['down', '-v', '--remove-orphans', '--timeout', '5']);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  // `up -d` waits for every depends_on condition (the migrate job, healthy services) itself;
  // then the published endpoints must answer.
  const up = await compose(['up', '-d', '--build']);
  const ready = up.code === 0 && (await answersWithin(600_000, [`${stack.hasuraUrl}/healthz?strict=true`, `${stack.edgeUrl}/healthz`, `${stack.edgeUrl}/auth/.well-known/jwks.json`]));
  if (!ready) {
    const logs = await compose(['logs', '--no-color', '--tail', '80']);
    const ps = await compose(['ps', '-a']);
    await stack.down();
    throw new Error(`the compose stack did not come up (${up.code}):\n${up.stderr}\n--- ps ---\n${ps.stdout}\n--- logs ---\n${logs.stdout}`);
  }
  return stack;
}
