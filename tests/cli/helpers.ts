import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Client as S3Client } from 'minio';
import { poolAs, services } from '../helpers/database.js';

const BIN = path.resolve(import.meta.dirname, '../../bin/tenantry.mjs');
/** This file's own purge stream, so no edge of another suite sees the CLI's purges. */
export const PURGE_STREAM = `edge:purges:cli-test:${randomBytes(4).toString('hex')}`;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON. */
  json<T = unknown>(): T;
}

/** A verified user's email, for `tenant create --owner` (every tenant has an owner). */
export async function ownerEmail(label: string): Promise<string> {
  const email = `${label.toLowerCase()}-owner-${randomBytes(5).toString('hex')}@example.test`;
  const admin = poolAs('platform_admin', 1);
  try {
    await admin.query(`INSERT INTO users (email, display_name, email_verified_at) VALUES ($1, 'Owner', now())`, [email]);
  } finally {
    await admin.end();
  }
  return email;
}

/** The environment of the test services, as an operator would export it. */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { endpoints, urls } = services();
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PLATFORM_ADMIN_DATABASE_URL: urls.platform_admin,
    DATABASE_URL: urls.tenantry_owner,
    REDIS_URL: endpoints.redisUrl,
    S3_ENDPOINT: endpoints.s3.endpoint,
    S3_ACCESS_KEY: endpoints.s3.accessKey,
    S3_SECRET_KEY: endpoints.s3.secretKey,
    EDGE_PURGE_STREAM: PURGE_STREAM,
    ...extra,
  };
}

/** Runs `node bin/tenantry.mjs …args` as a subprocess, stdin closed (not a terminal) unless given. */
export function cli(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: options.env ?? cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code,
        stdout,
        stderr,
        json<T>() {
          try {
            return JSON.parse(stdout) as T;
          } catch {
            throw new Error(`not JSON (exit ${code}): ${stdout}\n${stderr}`);
          }
        },
      }),
    );
    child.stdin.end(options.stdin ?? '');
  });
}

export function redisClient(): Redis {
  return new Redis(services().endpoints.redisUrl);
}

export function s3Client(): S3Client {
  const { endpoint, accessKey, secretKey } = services().endpoints.s3;
  const url = new URL(endpoint);
  return new S3Client({ endPoint: url.hostname, port: Number(url.port), useSSL: url.protocol === 'https:', accessKey, secretKey, pathStyle: true });
}

export async function objectNames(s3: S3Client, bucket: string): Promise<string[]> {
  const names: string[] = [];
  for await (const item of s3.listObjectsV2(bucket, '', true)) if (item.name) names.push(item.name);
  return names.sort();
}

/** Edge purges published on the stream since `since` (an entry id). */
export async function purgesSince(redis: Redis, since: string): Promise<Array<Record<string, string>>> {
  const entries = await redis.xrange(PURGE_STREAM, `(${since}`, '+');
  return entries.map(([, fields]) => {
    const record: Record<string, string> = {};
    for (let index = 0; index < fields.length; index += 2) record[fields[index]!] = fields[index + 1]!;
    return record;
  });
}

/** The newest entry id of the purge stream (or 0-0). */
export async function streamTail(redis: Redis): Promise<string> {
  const last = await redis.xrevrange(PURGE_STREAM, '+', '-', 'COUNT', 1);
  return last[0]?.[0] ?? '0-0';
}

/**
 * Runs the CLI on a pseudo-terminal (util-linux `script`), so stdin and stdout are TTYs;
 * types `answer` once `prompt` shows. Output comes back as one stream, as a terminal shows it.
 */
export function cliInTerminal(
  args: string[],
  options: { prompt?: string; answer?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, BIN, ...args].map((part) => `'${part.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], { env: options.env ?? cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let answered = false;
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (!answered && options.prompt && output.includes(options.prompt)) {
        answered = true;
        child.stdin.write(`${options.answer ?? ''}\r`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** One entry of a hand-made tar archive: any name, type and declared size, as a hostile archive has them. */
export interface TarEntrySpec {
  path: string;
  body?: string | Buffer;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'FIFO' | 'CharacterDevice';
  linkpath?: string;
  /** The size the header declares, when it should differ from the body's. */
  size?: number;
}

/**
 * A gzipped tar built entry by entry with tar's own header encoder: unlike tar.c it writes
 * what it is told (`../x`, absolute paths, links, sizes the body lacks).
 */
export async function handMadeTarball(entries: TarEntrySpec[]): Promise<Buffer> {
  const { Header } = await import('tar');
  const { gzipSync } = await import('node:zlib');
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = Buffer.from(entry.body ?? '');
    const header = Buffer.alloc(512);
    new Header({
      path: entry.path,
      type: entry.type ?? 'File',
      linkpath: entry.linkpath,
      size: entry.size ?? body.length,
      mode: entry.type === 'Directory' ? 0o755 : 0o644,
      mtime: new Date(),
      uid: 0,
      gid: 0,
    }).encode(header, 0);
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

/** A private TMPDIR for one CLI run, to see what the run leaves behind there. */
export async function privateTempDir(parent: string): Promise<{ env: NodeJS.ProcessEnv; leftovers(): Promise<string[]> }> {
  const { mkdtemp, readdir } = await import('node:fs/promises');
  const dir = await mkdtemp(path.join(parent, 'tmpdir-'));
  return {
    env: cliEnv({ TMPDIR: dir }),
    // tsx keeps its compile cache in TMPDIR too: only the CLI's own directories count.
    leftovers: async () => (await readdir(dir)).filter((name) => name.startsWith('tenantry-')),
  };
}
