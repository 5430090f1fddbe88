import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

const repositoryRoot = path.resolve(import.meta.dirname, '../..');
const TEMPLATE = path.join(repositoryRoot, 'nginx/templates/nginx.conf.template');

const hostPort = z.string().regex(/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'must be host:port');
const seconds = (fallback: number) => z.coerce.number().positive().default(fallback);
const dictSize = (fallback: string) => z.string().regex(/^\d+[km]$/, 'must be a size such as 32m').default(fallback);
const flag = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0'])
    .default(fallback ? 'true' : 'false')
    .transform((value) => value === 'true' || value === '1');

/** The label of the S3 host, s3.<BASE_DOMAIN>, where presigned URLs point. */
export const S3_LABEL = 's3';

/** Everything the edge reads from the environment, once, at render time. */
export const edgeEnvironmentSchema = z.object({
  EDGE_TARGET: z.enum(['debian', 'openresty']).default('debian'),
  EDGE_LISTEN_HOST: z.string().default('127.0.0.1'),
  EDGE_PORT: z.coerce.number().int().min(1).max(65535).default(8080),
  EDGE_WORKER_PROCESSES: z.string().regex(/^(auto|\d+)$/).default('auto'),
  BASE_DOMAIN: z
    .string()
    .transform((domain) => domain.toLowerCase().replace(/\.+$/, ''))
    .pipe(z.string().regex(/^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, 'must be a host name')),
  EDGE_RESERVED_LABELS: z
    .string()
    .default('www,api,app,admin,auth,billing,storage,graphql,console,dashboard,status,docs,help,mail,static,assets,cdn,edge,s3')
    .transform((list) => list.split(',').map((label) => label.trim().toLowerCase()).filter(Boolean))
    // s3.<BASE_DOMAIN> is the S3 host's own server, whatever the list says: never a tenant.
    .transform((labels) => [...new Set([...labels, S3_LABEL])]),
  HASURA_UPSTREAM: hostPort,
  AUTH_UPSTREAM: hostPort,
  BILLING_UPSTREAM: hostPort,
  STORAGE_UPSTREAM: hostPort,
  /** The S3 server behind s3.<BASE_DOMAIN>; without it that host answers 503 upstream_unavailable. */
  S3_UPSTREAM: hostPort.optional(),
  RESOLVER_UPSTREAM: hostPort,
  RESOLVER_SECRET: z.string().min(16, 'must be at least 16 characters').regex(/^[A-Za-z0-9_.~-]+$/, 'must be URL-safe characters'),
  EDGE_PURGE_SECRET: z.string().min(16, 'must be at least 16 characters'),
  EDGE_PURGE_TRUST_LOOPBACK: flag(true),
  EDGE_CACHE_TTL_SECONDS: seconds(30),
  EDGE_NEGATIVE_CACHE_TTL_SECONDS: seconds(5),
  EDGE_STALE_TTL_SECONDS: seconds(300),
  /** How long a membership answer is trusted: a removed member's token works at most this long. */
  EDGE_MEMBER_TTL_SECONDS: seconds(4),
  EDGE_TENANT_CACHE_SIZE: dictSize('32m'),
  /** Decoded answers each worker keeps in front of the shared dict. */
  EDGE_WORKER_CACHE_ITEMS: z.coerce.number().int().min(100).default(20_000),
  EDGE_RATE_LIMIT_DICT_SIZE: dictSize('8m'),
  EDGE_CLAIMS_NAMESPACE: z.string().default('https://hasura.io/jwt/claims'),
  REDIS_URL: z.string().url().optional(),
  EDGE_PURGE_STREAM: z.string().default('edge:purges'),
  EDGE_PURGE_POLL_SECONDS: seconds(0.25),
  /** node: each edge counts requests per second itself; cluster: Redis counts them for every edge. */
  EDGE_RATE_LIMIT_SCOPE: z.enum(['node', 'cluster']).default('node'),
  /** Requests per second and client address without a token (0: no limit), per edge. */
  EDGE_ANONYMOUS_RATE_LIMIT_RPS: z.coerce.number().int().min(0).default(20),
  /** The most monthly-quota budget one worker leases at a time (leases shrink as the month's headroom does). */
  EDGE_QUOTA_MAX_LEASE: z.coerce.number().int().min(1).default(200),
  /** A worker gives back a lease unused this long, so other workers and edges can spend it. */
  EDGE_QUOTA_IDLE_SECONDS: seconds(1),
  /** Redis on the request path: past this, the request goes on without it (quota fails open). */
  EDGE_REDIS_TIMEOUT_MS: z.coerce.number().int().min(1).max(5000).default(100),
  /** After a Redis failure, requests skip Redis this long before one tries again. */
  EDGE_REDIS_RETRY_SECONDS: seconds(2),
  /** The Redis stream the edge appends its counts of requests to, for the usage worker. */
  EDGE_USAGE_STREAM: z.string().min(1).default('usage:api'),
  /** Tests only: added to the clock for quota months and Reset headers, to cross a month's end on demand. */
  EDGE_TEST_CLOCK_OFFSET_SECONDS: z.coerce.number().default(0),
  EDGE_RUNTIME_DIR: z.string().default('/tmp/tenantry-edge'),
  EDGE_LUA_DIR: z.string().default(path.join(repositoryRoot, 'nginx/lua')),
  EDGE_ACCESS_LOG: z.string().optional(),
  EDGE_ERROR_LOG: z.string().optional(),
  EDGE_ERROR_LOG_LEVEL: z.enum(['debug', 'info', 'notice', 'warn', 'error']).default('warn'),
  CLIENT_MAX_BODY_SIZE: z.string().regex(/^\d+[km]?$/).default('50m'),
  /** TLS at the edge: a second listener on this port, when a certificate and key are given. */
  EDGE_TLS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  EDGE_TLS_CERTIFICATE: z.string().min(1).optional(),
  EDGE_TLS_CERTIFICATE_KEY: z.string().min(1).optional(),
  /** Idle connections kept per upstream and worker: below the concurrency, every extra request pays a TCP connect. */
  EDGE_UPSTREAM_KEEPALIVE: z.coerce.number().int().min(1).default(64),
});
export type EdgeEnvironment = z.infer<typeof edgeEnvironmentSchema>;

/** The TLS listener, or nothing: all three settings together, or none of them. */
function tlsListener(env: EdgeEnvironment): string {
  const given = [env.EDGE_TLS_PORT, env.EDGE_TLS_CERTIFICATE, env.EDGE_TLS_CERTIFICATE_KEY].filter((value) => value !== undefined);
  if (given.length === 0) return '';
  if (given.length !== 3) throw new Error('EDGE_TLS_PORT, EDGE_TLS_CERTIFICATE and EDGE_TLS_CERTIFICATE_KEY go together');
  return [
    `listen ${env.EDGE_LISTEN_HOST}:${env.EDGE_TLS_PORT} ssl;`,
    `ssl_certificate ${env.EDGE_TLS_CERTIFICATE};`,
    `ssl_certificate_key ${env.EDGE_TLS_CERTIFICATE_KEY};`,
    'ssl_protocols TLSv1.2 TLSv1.3;',
    'ssl_session_cache shared:edge_tls:10m;',
    'add_header Strict-Transport-Security "max-age=31536000" always;',
  ].join('\n        ');
}

const TARGETS = {
  debian: {
    modules: 'load_module /usr/lib/nginx/modules/ndk_http_module.so;\nload_module /usr/lib/nginx/modules/ngx_http_lua_module.so;',
    luaSystemPath: '/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua',
  },
  openresty: {
    modules: '',
    luaSystemPath: '/usr/local/openresty/lualib/?.lua;/usr/local/openresty/site/lualib/?.lua',
  },
} as const;

/** The settings file's name: it is written beside nginx.conf. */
export const EDGE_SETTINGS_FILE_NAME = 'edge-settings.json';

/** The settings the Lua reads (tenantry/config.lua), as JSON. */
function luaSettings(env: EdgeEnvironment): string {
  const redis = env.REDIS_URL ? new URL(env.REDIS_URL) : undefined;
  return JSON.stringify({
    base_domain: env.BASE_DOMAIN,
    reserved_labels: env.EDGE_RESERVED_LABELS,
    positive_ttl: env.EDGE_CACHE_TTL_SECONDS,
    negative_ttl: env.EDGE_NEGATIVE_CACHE_TTL_SECONDS,
    stale_ttl: env.EDGE_STALE_TTL_SECONDS,
    member_ttl: env.EDGE_MEMBER_TTL_SECONDS,
    worker_cache_items: env.EDGE_WORKER_CACHE_ITEMS,
    claims_namespace: env.EDGE_CLAIMS_NAMESPACE,
    purge_secret: env.EDGE_PURGE_SECRET,
    purge_trust_loopback: env.EDGE_PURGE_TRUST_LOOPBACK,
    redis_host: redis?.hostname ?? '',
    redis_port: redis ? Number(redis.port || 6379) : 0,
    // For AUTH (tenantry/redis_client.lua, purge.lua): '' when the URL names none. Only in this
    // file (mode 0600, like the purge secret), never in nginx.conf or a log line.
    redis_username: redis ? decodeURIComponent(redis.username) : '',
    redis_password: redis ? decodeURIComponent(redis.password) : '',
    purge_stream: env.EDGE_PURGE_STREAM,
    purge_poll_interval: env.EDGE_PURGE_POLL_SECONDS,
    rate_limit_scope: env.EDGE_RATE_LIMIT_SCOPE,
    anonymous_rps: env.EDGE_ANONYMOUS_RATE_LIMIT_RPS,
    quota_max_lease: env.EDGE_QUOTA_MAX_LEASE,
    quota_idle_seconds: env.EDGE_QUOTA_IDLE_SECONDS,
    redis_timeout_ms: env.EDGE_REDIS_TIMEOUT_MS,
    redis_retry_interval: env.EDGE_REDIS_RETRY_SECONDS,
    usage_stream: env.EDGE_USAGE_STREAM,
    clock_offset: env.EDGE_TEST_CLOCK_OFFSET_SECONDS,
    s3_configured: env.S3_UPSTREAM !== undefined,
  });
}

/**
 * A Lua string literal of any text: every byte but a few plain ones as a decimal escape, so
 * no quote, bracket, brace or backslash of the text reaches Lua (or nginx's block parser).
 */
function luaStringLiteral(text: string): string {
  const plain = /^[A-Za-z0-9/._-]$/;
  // Three digits always: Lua reads up to three, so a digit after a shorter escape would join it.
  const escape = (byte: number) => `\\${String(byte).padStart(3, '0')}`;
  const characters = [...Buffer.from(text, 'utf8')].map((byte) => (plain.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : escape(byte)));
  return `"${characters.join('')}"`;
}

export interface RenderedEdgeConfig {
  /** nginx.conf's text. Its init_by_lua reads settingsFile: values are data there, never Lua source. */
  nginxConf: string;
  /** Where the settings go: beside nginx.conf. */
  settingsFile: string;
  /** The settings the Lua reads, as JSON. */
  settingsJson: string;
}

/** Renders nginx.conf, to be written to `nginxConfFile`, and the settings file beside it. */
export function renderEdgeConfig(env: EdgeEnvironment, nginxConfFile: string, template = readFileSync(TEMPLATE, 'utf8')): RenderedEdgeConfig {
  if (env.EDGE_RATE_LIMIT_SCOPE === 'cluster' && !env.REDIS_URL) throw new Error('EDGE_RATE_LIMIT_SCOPE=cluster needs REDIS_URL');
  const settingsFile = path.join(path.dirname(path.resolve(nginxConfFile)), EDGE_SETTINGS_FILE_NAME);
  const target = TARGETS[env.EDGE_TARGET];
  const values: Record<string, string> = {
    LOAD_MODULES: target.modules,
    LUA_SYSTEM_PATH: target.luaSystemPath,
    LUA_DIR: env.EDGE_LUA_DIR,
    WORKER_PROCESSES: env.EDGE_WORKER_PROCESSES,
    RUNTIME_DIR: env.EDGE_RUNTIME_DIR,
    ERROR_LOG: env.EDGE_ERROR_LOG ?? path.join(env.EDGE_RUNTIME_DIR, 'error.log'),
    ERROR_LOG_LEVEL: env.EDGE_ERROR_LOG_LEVEL,
    ACCESS_LOG: env.EDGE_ACCESS_LOG ?? path.join(env.EDGE_RUNTIME_DIR, 'access.log'),
    TENANT_CACHE_SIZE: env.EDGE_TENANT_CACHE_SIZE,
    RATE_LIMIT_DICT_SIZE: env.EDGE_RATE_LIMIT_DICT_SIZE,
    EDGE_SETTINGS_FILE: luaStringLiteral(settingsFile),
    CLIENT_MAX_BODY_SIZE: env.CLIENT_MAX_BODY_SIZE,
    UPSTREAM_KEEPALIVE: String(env.EDGE_UPSTREAM_KEEPALIVE),
    LISTEN: `${env.EDGE_LISTEN_HOST}:${env.EDGE_PORT}`,
    TLS_LISTEN: tlsListener(env),
    HASURA_UPSTREAM: env.HASURA_UPSTREAM,
    AUTH_UPSTREAM: env.AUTH_UPSTREAM,
    BILLING_UPSTREAM: env.BILLING_UPSTREAM,
    STORAGE_UPSTREAM: env.STORAGE_UPSTREAM,
    S3_HOST: `${S3_LABEL}.${env.BASE_DOMAIN}`,
    // Without an S3 server the host refuses before proxying (tenantry/s3.lua); nginx still
    // needs the upstream to exist, with a server it never tries.
    S3_UPSTREAM: env.S3_UPSTREAM ?? '127.0.0.1:9 down',
    RESOLVER_UPSTREAM: env.RESOLVER_UPSTREAM,
    RESOLVER_SECRET: env.RESOLVER_SECRET,
  };
  const rendered = template.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`the edge template names {{${name}}}, which render.ts does not know`);
    return value;
  });
  return { nginxConf: rendered, settingsFile, settingsJson: luaSettings(env) };
}

/**
 * Writes nginx.conf and its settings file beside it, readable by their owner only (they
 * hold the resolver and purge secrets; nginx's master reads them before dropping privileges).
 */
export function writeEdgeConfig(env: EdgeEnvironment, nginxConfFile: string, template?: string): RenderedEdgeConfig {
  const rendered = renderEdgeConfig(env, nginxConfFile, template);
  writeFileSync(rendered.settingsFile, rendered.settingsJson, { mode: 0o600 });
  writeFileSync(nginxConfFile, rendered.nginxConf, { mode: 0o600 });
  return rendered;
}

// As a command (the compose file's edge-config job): render from the environment into a file.
if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  const { loadConfigOrExit } = await import('../../services/shared/src/config.js');
  const output = process.argv[2];
  if (!output) {
    console.error('usage: render.ts OUTPUT_FILE');
    process.exit(2);
  }
  const { settingsFile } = writeEdgeConfig(loadConfigOrExit(edgeEnvironmentSchema), output);
  console.log(`edge config written to ${output} and ${settingsFile}`);
}
