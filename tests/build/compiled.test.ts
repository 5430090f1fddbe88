/**
 * The production image, as far as this machine goes without Docker: the Dockerfile's build
 * stage is replayed in a directory holding only what its COPY lines copy (so a file the
 * build needs but the Dockerfile forgets fails here), `npm run build` runs there once, the
 * runtime stage's layout is assembled from its COPY lines, and the compiled services, CLI,
 * secrets job and edge renderer run from it with the compose environment and the image's
 * NODE_OPTIONS, under a loader hook that fails any import of a dev-only package (tsx,
 * typescript, vitest…).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { services } from '../helpers/database.js';
import { loadCompose, secretsVolumeOf, serviceEnvironment, type Service } from '../compose/compose-files.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const work = mkdtempSync(path.join(os.tmpdir(), 'tenantry-image-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// --- The Dockerfile, read as instructions per stage --------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** Stages with their instructions; continuation lines joined, comments dropped. */
function parseDockerfile(file: string): { args: Record<string, string>; stages: Stage[] } {
  const text = readFileSync(path.join(ROOT, file), 'utf8').replace(/\\\n\s*/g, ' ');
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of text.split('\n').map((raw) => raw.trim())) {
    if (!line || line.startsWith('#')) continue;
    const [, keyword, rest] = /^(\S+)\s+(.*)$/.exec(line) ?? [];
    if (!keyword || rest === undefined) throw new Error(`unparsed Dockerfile line: ${line}`);
    const upper = keyword.toUpperCase();
    if (upper === 'FROM') {
      const [, image, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest) ?? [];
      stages.push({ name: name ?? String(stages.length), from: image!.replace(/^\$\{(\w+)\}$/, (_whole, arg: string) => args[arg] ?? _whole), instructions: [] });
    } else if (upper === 'ARG' && stages.length === 0) {
      const [name, value] = rest.split('=');
      args[name!] = value ?? '';
    } else {
      stages.at(-1)!.instructions.push({ keyword: upper, args: rest });
    }
  }
  return { args, stages };
}

/** COPY [--from=stage] src… dest */
function copyParts(instruction: Instruction): { from?: string; sources: string[]; destination: string } {
  const words = instruction.args.split(/\s+/);
  const from = words[0]?.startsWith('--from=') ? words.shift()!.slice('--from='.length) : undefined;
  const destination = words.pop()!;
  return { from, sources: words, destination };
}

const dockerfile = parseDockerfile('Dockerfile');
const stage = (name: string) => dockerfile.stages.find((candidate) => candidate.name === name);

/** Replays a stage's COPY lines into `directory` (WORKDIR /app is `directory`). */
function replayCopies(current: Stage, directory: string, stageDirectories: Record<string, string>): void {
  for (const instruction of current.instructions.filter((item) => item.keyword === 'COPY')) {
    const { from, sources, destination } = copyParts(instruction);
    for (const source of sources) {
      const origin = from ? path.join(stageDirectories[from]!, source.replace(/^\/app\/?/, '')) : path.join(ROOT, source);
      const target = path.join(directory, destination === './' ? (from ? '' : path.basename(source)) : destination.replace(/^\.\//, ''));
      cpSync(origin, target, { recursive: true });
    }
  }
}

// --- Running the compiled programs like the image does -------------------------------------

/** Packages only the dev tree needs (package-lock's dev flag): importing one at run time fails. */
function devOnlyPackages(): string[] {
  const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  return Object.entries(lock.packages)
    .filter(([location, entry]) => entry.dev && /^node_modules\/(@[^/]+\/)?[^/]+$/.test(location))
    .map(([location]) => location.slice('node_modules/'.length));
}

function writeDevDependencyGuard(): string {
  const hooks = path.join(work, 'dev-guard-hooks.mjs');
  writeFileSync(
    hooks,
    `let devOnly = new Set();
export function initialize(data) { devOnly = new Set(data.devOnly); }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  const match = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(result.url);
  if (match && devOnly.has(match[1])) throw new Error('dev-only package ' + match[1] + ' imported at run time by ' + context.parentURL);
  return result;
}
`,
  );
  const register = path.join(work, 'dev-guard.mjs');
  writeFileSync(
    register,
    `import { register } from 'node:module';
register(${JSON.stringify(new URL(`file://${hooks}`).href)}, { data: { devOnly: ${JSON.stringify(devOnlyPackages())} } });
`,
  );
  return register;
}

let runtime: string;
/** The Dockerfile's NODE_OPTIONS (the secret expander) after the dev-dependency guard. */
let imageNodeOptions: string;
let guardOnly: string;
/** Compose may set NODE_OPTIONS itself (the secrets job turns the expander off). */
const nodeOptions = (env: NodeJS.ProcessEnv) => (env.NODE_OPTIONS === '' ? guardOnly : imageNodeOptions);
const compose = loadCompose('docker-compose.yml');
const started: ChildProcess[] = [];
afterAll(() => started.forEach((child) => child.kill('SIGTERM')));

/** The compose service's `command` for the node image. */
const commandOf = (name: string) => compose.services[name]!.command as string[];

function run(args: string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('node', args, { cwd: runtime, env: { PATH: process.env.PATH, ...env, NODE_OPTIONS: nodeOptions(env) }, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function waitFor(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${output()}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${url} did not answer: ${output()}`);
}

function start(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string } {
  let output = '';
  const child = spawn('node', args, { cwd: runtime, env: { PATH: process.env.PATH, ...env, NODE_OPTIONS: nodeOptions(env) }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  started.push(child);
  return { child, output: () => output };
}

describe('the Dockerfile', () => {
  test('has the three stages, each referring only to stages before it', () => {
    expect(dockerfile.stages.map((item) => item.name)).toEqual(['deps', 'build', 'runtime']);
    expect(stage('build')!.from).toBe('deps');
    expect(stage('deps')!.from).toBe(stage('runtime')!.from);
    expect(stage('runtime')!.from).toMatch(/^node:20\.\d+\.\d+-bookworm-slim$/);
    dockerfile.stages.forEach((current, index) => {
      const earlier = dockerfile.stages.slice(0, index).map((item) => item.name);
      for (const copy of current.instructions.filter((item) => item.keyword === 'COPY').map(copyParts)) {
        if (copy.from) expect(earlier, `${current.name} copies from ${copy.from}`).toContain(copy.from);
      }
    });
  });

  test.each([['Dockerfile'], ['docker/minio.Dockerfile']])('every COPY source of %s exists in the build context and is not .dockerignored', (file) => {
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').filter((line) => line && !line.startsWith('#'));
    for (const current of parseDockerfile(file).stages) {
      for (const copy of current.instructions.filter((item) => item.keyword === 'COPY').map(copyParts)) {
        if (copy.from) continue;
        for (const source of copy.sources) {
          expect(existsSync(path.join(ROOT, source)), `${file}: COPY ${source}`).toBe(true);
          expect(ignored.some((pattern) => source === pattern || source.startsWith(`${pattern}/`)), `${source} is ignored`).toBe(false);
        }
      }
    }
    // Never in an image: a developer's .env, the native stack's state, a local build.
    for (const excluded of ['.env', '.stack', 'node_modules', 'dist']) expect(ignored).toContain(excluded);
  });

  test('the runtime stage: production dependencies only, dist only, a non-root user, a health check', () => {
    const instructions = stage('runtime')!.instructions;
    const runs = instructions.filter((item) => item.keyword === 'RUN').map((item) => item.args);
    expect(runs.some((command) => /npm ci\b.*--omit=dev/.test(command))).toBe(true);
    expect(runs.join('\n')).not.toMatch(/--include=dev|tsx|tsc/);
    const copies = instructions.filter((item) => item.keyword === 'COPY').map(copyParts);
    expect(copies.filter((copy) => !copy.from).flatMap((copy) => copy.sources)).toEqual(['package.json', 'package-lock.json']);
    expect(copies.filter((copy) => copy.from)).toEqual([{ from: 'build', sources: ['/app/dist/'], destination: './' }]);
    const user = instructions.filter((item) => item.keyword === 'USER').at(-1)?.args;
    expect(user).toBeTruthy();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    expect(instructions.some((item) => item.keyword === 'HEALTHCHECK')).toBe(true);
    expect(stage('build')!.instructions.filter((item) => item.keyword === 'RUN').map((item) => item.args)).toEqual(['npm run build']);
  });
});

describe('the image, assembled from the Dockerfile without Docker, runs compiled JavaScript', () => {
  beforeAll(() => {
    // deps + build: only what their COPY lines copy, then the build stage's own RUN.
    const buildDir = path.join(work, 'build');
    mkdirSync(buildDir);
    replayCopies(stage('deps')!, buildDir, {});
    replayCopies(stage('build')!, buildDir, {});
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(buildDir, 'node_modules'));
    const build = spawnSync('npm', ['run', 'build'], { cwd: buildDir, encoding: 'utf8', timeout: 300_000 });
    expect(build.status, `${build.stdout}\n${build.stderr}`).toBe(0);

    // runtime: package files and dist/, node_modules beside them (the guard stands in for --omit=dev).
    runtime = path.join(work, 'runtime');
    mkdirSync(runtime);
    replayCopies(stage('runtime')!, runtime, { build: buildDir });
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(runtime, 'node_modules'));
    const env = stage('runtime')!.instructions.find((item) => item.keyword === 'ENV' && item.args.startsWith('NODE_OPTIONS='))!.args;
    guardOnly = `--import=${writeDevDependencyGuard()}`;
    imageNodeOptions = `${guardOnly} ${env.slice('NODE_OPTIONS='.length).replace('=/app/', `=${runtime}/`)}`;
  }, 360_000);

  test('the runtime holds JavaScript and data only: no TypeScript, no tsx, every entry point compose and the Dockerfile name', () => {
    const files: string[] = [];
    const walk = (directory: string) => {
      for (const name of readdirSync(directory)) {
        if (name === 'node_modules') continue;
        const full = path.join(directory, name);
        if (statSync(full).isDirectory()) walk(full);
        else files.push(path.relative(runtime, full));
      }
    };
    walk(runtime);
    expect(files.filter((file) => file.endsWith('.ts'))).toEqual([]);
    for (const file of files.filter((name) => /\.m?js$/.test(name))) {
      expect(readFileSync(path.join(runtime, file), 'utf8'), file).not.toMatch(/from ['"]tsx|import\(['"]tsx|\.ts['"]\)/);
    }
    const cmd = JSON.parse(stage('runtime')!.instructions.find((item) => item.keyword === 'CMD')!.args) as string[];
    const entryPoints = [cmd, ...['secrets', 'resolver', 'auth', 'billing', 'storage', 'edge-config'].map(commandOf), compose.services.tenantry!.entrypoint as string[]]
      .map((command) => command[1]!)
      .concat('scripts/compose/expand-secrets.js');
    for (const entry of entryPoints) expect(files, entry).toContain(entry);
    // Data the compiled code reads relative to itself.
    expect(files).toContain('nginx/templates/nginx.conf.template');
    expect(files.some((file) => /^hasura\/migrations\/default\/\d+_foundation\/up\.sql$/.test(file))).toBe(true);
  });

  describe('with the compose environment (no .env but the test database’s names and passwords)', () => {
    let secretsDir: string;
    let dotEnv: Map<string, string>;
    /** The service's environment as compose hands it over, pointed at this machine's servers. */
    const environmentOf = (service: Service, extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
      const { endpoints } = services();
      const postgres = new URL(endpoints.postgresAdminUrl);
      const redis = new URL(endpoints.redisUrl);
      const composed = serviceEnvironment(service, dotEnv);
      const local = Object.fromEntries(
        Object.entries(composed).map(([name, value]) => [
          name,
          value.replace('@postgres:5432/', `@${postgres.hostname}:${postgres.port}/`).replace('@redis:6379', `@${redis.hostname}:${redis.port}`),
        ]),
      );
      // The service's own secrets volume: the consumer directory the job wrote for it.
      const volume = secretsVolumeOf(service);
      return { ...local, ...(volume ? { TENANTRY_SECRETS_DIR: path.join(secretsDir, 'for', volume.slice('secrets-'.length)) } : {}), ...extra };
    };

    beforeAll(() => {
      const { database, passwords } = services();
      // What an operator's .env would say for this database; the rest is generated by the job.
      dotEnv = new Map([
        ['POSTGRES_DB', database],
        ['TENANTRY_OWNER_DB_PASSWORD', passwords.tenantry_owner],
        ['HASURA_DB_PASSWORD', passwords.hasura_app],
        ['APP_SERVICE_DB_PASSWORD', passwords.app_service],
        ['PLATFORM_ADMIN_DB_PASSWORD', passwords.platform_admin],
        ['REDIS_PASSWORD', decodeURIComponent(new URL(services().endpoints.redisUrl).password)],
      ]);
      secretsDir = path.join(work, 'secrets');
      const [script] = commandOf('secrets').slice(1);
      const job = run([script!, path.join(secretsDir, 'all'), path.join(secretsDir, 'for')], environmentOf(compose.services.secrets!));
      expect(job.status, job.stderr).toBe(0);
      expect(job.stdout).toMatch(/^APP_SERVICE_DB_PASSWORD: environment$/m);
      expect(job.stdout).toMatch(/^AUTH_SIGNING_KEYS: generated$/m);
    });

    test('the compiled resolver starts, reaches Postgres with its expanded password, and checks the generated secret', async () => {
      const port = await getPort();
      const { child, output } = start(commandOf('resolver').slice(1), environmentOf(compose.services.resolver!, { RESOLVER_HOST: '127.0.0.1', RESOLVER_PORT: String(port) }));
      await waitFor(`http://127.0.0.1:${port}/healthz`, child, output);
      const secret = readFileSync(path.join(secretsDir, 'for', 'resolver', 'RESOLVER_SECRET'), 'utf8');
      const lookup = (headers: Record<string, string>) => fetch(`http://127.0.0.1:${port}/internal/resolve?by=slug&value=no-such-tenant-${port}`, { headers });
      const [known, wrong] = await Promise.all([lookup({ 'x-resolver-secret': secret }), lookup({ 'x-resolver-secret': 'not-the-secret-at-all' })]);
      expect(known.status, output()).toBe(404);
      expect(((await known.json()) as { error: { code: string } }).error.code).toBe('tenant_not_found');
      expect(wrong.status).toBe(401);
    });

    test('the compiled auth service starts and publishes the generated signing key', async () => {
      const port = await getPort();
      const { child, output } = start(commandOf('auth').slice(1), environmentOf(compose.services.auth!, { AUTH_HOST: '127.0.0.1', AUTH_PORT: String(port) }));
      await waitFor(`http://127.0.0.1:${port}/healthz`, child, output);
      const jwks = (await (await fetch(`http://127.0.0.1:${port}/auth/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string; kty: string }> };
      const [generated] = JSON.parse(readFileSync(path.join(secretsDir, 'for', 'auth', 'AUTH_SIGNING_KEYS'), 'utf8')) as Array<{ kid: string }>;
      expect(jwks.keys.map((key) => [key.kid, key.kty])).toEqual([[generated!.kid, 'RSA']]);
    });

    test('the compiled CLI: --help, and db status on the migrated test database (the tenantry tool service’s environment)', () => {
      const entry = (compose.services.tenantry!.entrypoint as string[]).slice(1);
      const help = run([...entry, '--help'], {});
      expect(help.status, help.stderr).toBe(0);
      expect(help.stdout).toMatch(/Usage: tenantry/);
      const status = run([...entry, 'db', 'status', '--json'], environmentOf(compose.services.tenantry!));
      expect(status.status, status.stderr).toBe(0);
      const rows = JSON.parse(status.stdout) as Array<{ name: string; state: string }>;
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.find((row) => row.name === 'foundation')?.state).toBe('applied');
    });

    test('the compiled edge renderer writes the edge config from the edge-config job’s environment', () => {
      const output = path.join(work, 'edge', 'nginx.conf');
      mkdirSync(path.dirname(output), { recursive: true });
      const result = run([commandOf('edge-config')[1]!, output], environmentOf(compose.services['edge-config']!));
      expect(result.status, result.stderr).toBe(0);
      expect(readFileSync(output, 'utf8')).toContain('upstream hasura');
    });

    test('the guard is real: the checkout’s tsx launcher fails under it', () => {
      const result = spawnSync('node', [path.join(ROOT, 'bin/tenantry.mjs'), '--help'], {
        env: { PATH: process.env.PATH, NODE_OPTIONS: imageNodeOptions },
        encoding: 'utf8',
      });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toMatch(/dev-only package tsx imported at run time/);
    });
  });
});
