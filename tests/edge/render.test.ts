import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { readConfig } from '../../services/shared/src/config.js';
import { edgeEnvironmentSchema, renderEdgeConfig, writeEdgeConfig } from '../../scripts/edge/render.js';
import getPort from 'get-port';
import { startEdge } from '../../scripts/native/edge.js';
import { stopProcess } from '../../scripts/native/services.js';
import { send, startEdgeHarness } from './harness.js';

const env = {
  BASE_DOMAIN: 'Example-SaaS.com.',
  HASURA_UPSTREAM: 'hasura:8080',
  AUTH_UPSTREAM: 'auth:4002',
  BILLING_UPSTREAM: 'billing:4003',
  STORAGE_UPSTREAM: 'storage:4004',
  RESOLVER_UPSTREAM: 'resolver:4001',
  RESOLVER_SECRET: 'resolver-secret-0123456789',
  EDGE_PURGE_SECRET: 'purge-secret-0123456789',
  REDIS_URL: 'redis://redis:6379',
};

const UPSTREAMS = ['HASURA_UPSTREAM', 'AUTH_UPSTREAM', 'BILLING_UPSTREAM', 'STORAGE_UPSTREAM', 'RESOLVER_UPSTREAM'] as const;
const CONF_FILE = '/etc/tenantry-edge/nginx.conf';
const render = (settings: Record<string, string | undefined>, template?: string) =>
  renderEdgeConfig(readConfig(edgeEnvironmentSchema, settings), CONF_FILE, template).nginxConf;

describe('edge config rendering', () => {
  test('every value comes from the environment, once; the Lua settings are a JSON file beside nginx.conf', () => {
    const rendered = renderEdgeConfig(readConfig(edgeEnvironmentSchema, { ...env, EDGE_TARGET: 'openresty', EDGE_PORT: '9090' }), CONF_FILE);
    const conf = rendered.nginxConf;
    expect(conf).not.toMatch(/\{\{[A-Z0-9_]+\}\}/);
    expect(conf).toContain('listen 127.0.0.1:9090 default_server;');
    expect(conf).toContain('upstream resolver { server resolver:4001;');
    expect(conf).not.toContain('load_module');
    expect(rendered.settingsFile).toBe('/etc/tenantry-edge/edge-settings.json');
    expect(conf).not.toContain('purge-secret');
    const luaConfig = JSON.parse(rendered.settingsJson);
    expect(luaConfig).toMatchObject({ base_domain: 'example-saas.com', redis_host: 'redis', redis_port: 6379, positive_ttl: 30, purge_secret: env.EDGE_PURGE_SECRET });
    expect(luaConfig.reserved_labels).toContain('www');
    expect(luaConfig).toMatchObject({ redis_username: '', redis_password: '' });
  });

  test("REDIS_URL's user and password reach the Lua settings decoded, and only them", () => {
    const password = 'p@ss:w/rd%]==]"';
    const redisUrl = `redis://default:${encodeURIComponent(password)}@redis:6380`;
    const rendered = renderEdgeConfig(readConfig(edgeEnvironmentSchema, { ...env, REDIS_URL: redisUrl }), CONF_FILE);
    expect(JSON.parse(rendered.settingsJson)).toMatchObject({ redis_host: 'redis', redis_port: 6380, redis_username: 'default', redis_password: password });
    expect(rendered.nginxConf).not.toContain('p@ss');
    expect(rendered.nginxConf).not.toContain(encodeURIComponent(password));
    // A password alone (redis://:pw@host) is AUTH with the password only.
    const passwordOnly = JSON.parse(renderEdgeConfig(readConfig(edgeEnvironmentSchema, { ...env, REDIS_URL: 'redis://:secret-pw@redis:6379' }), CONF_FILE).settingsJson);
    expect(passwordOnly).toMatchObject({ redis_username: '', redis_password: 'secret-pw' });
  });

  test('Debian needs the Lua module loaded', () => {
    const conf = render(env);
    expect(conf).toContain('load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;');
  });

  test('a missing or malformed setting is named', () => {
    expect(() => readConfig(edgeEnvironmentSchema, { ...env, RESOLVER_UPSTREAM: undefined })).toThrow(/RESOLVER_UPSTREAM is required/);
    expect(() => readConfig(edgeEnvironmentSchema, { ...env, HASURA_UPSTREAM: 'http://hasura' })).toThrow(/HASURA_UPSTREAM is invalid: must be host:port/);
    expect(() => readConfig(edgeEnvironmentSchema, { ...env, EDGE_PURGE_SECRET: 'short' })).toThrow(/EDGE_PURGE_SECRET is invalid/);
  });

  test('TLS: a listener with the certificate when all three settings are given, none otherwise', () => {
    const tls = { EDGE_TLS_PORT: '8443', EDGE_TLS_CERTIFICATE: '/tls/fullchain.pem', EDGE_TLS_CERTIFICATE_KEY: '/tls/privkey.pem' };
    const conf = render({ ...env, ...tls });
    expect(conf).toContain('listen 127.0.0.1:8443 ssl;');
    expect(conf).toContain('ssl_certificate_key /tls/privkey.pem;');
    expect(render(env)).not.toContain('ssl');
    expect(() => render({ ...env, EDGE_TLS_PORT: '8443' })).toThrow(/go together/);
  });

  test('the S3 host: its own server for s3.<BASE_DOMAIN>, with the TLS listener too; s3 is reserved whatever the list says', () => {
    const tls = { EDGE_TLS_PORT: '8443', EDGE_TLS_CERTIFICATE: '/tls/fullchain.pem', EDGE_TLS_CERTIFICATE_KEY: '/tls/privkey.pem' };
    const rendered = renderEdgeConfig(readConfig(edgeEnvironmentSchema, { ...env, ...tls, S3_UPSTREAM: 'minio:9000' }), CONF_FILE);
    expect(rendered.nginxConf).toContain('server_name s3.example-saas.com;');
    expect(rendered.nginxConf).toContain('upstream s3       { server minio:9000;');
    expect(rendered.nginxConf.match(/listen 127\.0\.0\.1:8443 ssl;/g)).toHaveLength(2);
    expect(JSON.parse(rendered.settingsJson)).toMatchObject({ s3_configured: true });
    expect(JSON.parse(rendered.settingsJson).reserved_labels).toContain('s3');

    const without = renderEdgeConfig(readConfig(edgeEnvironmentSchema, { ...env, EDGE_RESERVED_LABELS: 'www,api' }), CONF_FILE);
    expect(without.nginxConf).toContain('upstream s3       { server 127.0.0.1:9 down;');
    expect(JSON.parse(without.settingsJson)).toMatchObject({ s3_configured: false, reserved_labels: ['www', 'api', 's3'] });
    expect(() => readConfig(edgeEnvironmentSchema, { ...env, S3_UPSTREAM: 'http://minio:9000' })).toThrow(/S3_UPSTREAM is invalid: must be host:port/);
  });

  test('a template placeholder the renderer does not know stops the render', () => {
    expect(() => render(env, 'listen {{NO_SUCH_SETTING}};')).toThrow(/NO_SUCH_SETTING/);
  });
});

// The settings used to be pasted into Lua source between [==[ and ]==]: a value holding ]==]
// ended the string there and the rest ran as Lua code in nginx's master process.
const BREAKOUT = `x]==] error("the edge config ran as code") --[==[ "quoted" 'too' \\ ]]`;

describe('the Lua reads its settings as data', () => {
  test('a value with ]==] and quotes is written to the JSON file as it is, and nowhere in nginx.conf', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tenantry-render-'));
    try {
      const confFile = path.join(dir, 'nginx.conf');
      const rendered = writeEdgeConfig(readConfig(edgeEnvironmentSchema, { ...env, EDGE_PURGE_SECRET: BREAKOUT, EDGE_CLAIMS_NAMESPACE: BREAKOUT }), confFile);
      expect(await readFile(confFile, 'utf8')).not.toContain(BREAKOUT);
      const written = JSON.parse(await readFile(path.join(dir, 'edge-settings.json'), 'utf8'));
      expect(written).toMatchObject({ purge_secret: BREAKOUT, claims_namespace: BREAKOUT });
      expect(rendered.settingsFile).toBe(path.join(dir, 'edge-settings.json'));
      // The settings hold the purge secret: for the edge's own user only.
      expect((await stat(rendered.settingsFile)).mode & 0o077).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('nginx loads such a value as a string: the purge secret holding ]==] opens the purge route, nothing else does', async () => {
    const harness = await startEdgeHarness({ EDGE_PURGE_SECRET: BREAKOUT, EDGE_PURGE_TRUST_LOOPBACK: 'false' });
    try {
      const purge = (secret: string) =>
        send(harness.edge.url, '/_edge/purge', { method: 'POST', headers: { 'X-Edge-Secret': secret }, body: JSON.stringify({ slug: 'anything' }) });
      expect((await purge(BREAKOUT)).status).toBe(200);
      expect((await purge('x')).status).toBe(403);
      expect((await send(harness.edge.url, '/healthz')).status).toBe(200);
    } finally {
      await harness.stop();
    }
  });

  test('an nginx.conf in a directory whose name holds quotes and ]==] still finds its settings', async () => {
    const parent = await mkdtemp(path.join(os.tmpdir(), 'tenantry-render-'));
    await chmod(parent, 0o755);
    const runtimeDir = path.join(parent, `q"u'o]==]te`);
    const secret = 'purge-secret-of-the-odd-directory';
    const edge = await startEdge({
      runtimeDir,
      detached: false,
      env: { ...env, ...Object.fromEntries(UPSTREAMS.map((name) => [name, '127.0.0.1:9'])), EDGE_PORT: String(await getPort()), EDGE_PURGE_SECRET: secret, EDGE_PURGE_TRUST_LOOPBACK: 'false', REDIS_URL: undefined },
    });
    try {
      expect(readFileSync(path.join(runtimeDir, 'edge-settings.json'), 'utf8')).toContain(secret);
      const purge = (given: string) => send(edge.url, '/_edge/purge', { method: 'POST', headers: { 'X-Edge-Secret': given }, body: JSON.stringify({ slug: 'anything' }) });
      expect((await purge(secret)).status).toBe(200);
      expect((await purge(env.EDGE_PURGE_SECRET)).status).toBe(403);
    } finally {
      await stopProcess(edge.pid);
      await rm(parent, { recursive: true, force: true });
    }
  });
});
