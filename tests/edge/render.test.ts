import { describe, expect, test } from 'vitest';
import { readConfig } from '../../services/shared/src/config.js';
import { edgeEnvironmentSchema, renderEdgeConfig } from '../../scripts/edge/render.js';

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

describe('edge config rendering', () => {
  test('every value comes from the environment, once', () => {
    const conf = renderEdgeConfig(readConfig(edgeEnvironmentSchema, { ...env, EDGE_TARGET: 'openresty', EDGE_PORT: '9090' }));
    expect(conf).not.toMatch(/\{\{[A-Z_]+\}\}/);
    expect(conf).toContain('listen 127.0.0.1:9090 default_server;');
    expect(conf).toContain('upstream resolver { server resolver:4001;');
    expect(conf).not.toContain('load_module');
    const luaConfig = JSON.parse(/\[==\[(.*)\]==\]/.exec(conf)![1]!);
    expect(luaConfig).toMatchObject({ base_domain: 'example-saas.com', redis_host: 'redis', redis_port: 6379, positive_ttl: 30 });
    expect(luaConfig.reserved_labels).toContain('www');
  });

  test('Debian needs the Lua module loaded', () => {
    const conf = renderEdgeConfig(readConfig(edgeEnvironmentSchema, env));
    expect(conf).toContain('load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;');
  });

  test('a missing or malformed setting is named', () => {
    expect(() => readConfig(edgeEnvironmentSchema, { ...env, RESOLVER_UPSTREAM: undefined })).toThrow(/RESOLVER_UPSTREAM is required/);
    expect(() => readConfig(edgeEnvironmentSchema, { ...env, HASURA_UPSTREAM: 'http://hasura' })).toThrow(/HASURA_UPSTREAM is invalid: must be host:port/);
    expect(() => readConfig(edgeEnvironmentSchema, { ...env, EDGE_PURGE_SECRET: 'short' })).toThrow(/EDGE_PURGE_SECRET is invalid/);
  });

  test('TLS: a listener with the certificate when all three settings are given, none otherwise', () => {
    const tls = { EDGE_TLS_PORT: '8443', EDGE_TLS_CERTIFICATE: '/tls/fullchain.pem', EDGE_TLS_CERTIFICATE_KEY: '/tls/privkey.pem' };
    const conf = renderEdgeConfig(readConfig(edgeEnvironmentSchema, { ...env, ...tls }));
    expect(conf).toContain('listen 127.0.0.1:8443 ssl;');
    expect(conf).toContain('ssl_certificate_key /tls/privkey.pem;');
    expect(renderEdgeConfig(readConfig(edgeEnvironmentSchema, env))).not.toContain('ssl');
    expect(() => renderEdgeConfig(readConfig(edgeEnvironmentSchema, { ...env, EDGE_TLS_PORT: '8443' }))).toThrow(/go together/);
  });

  test('a template placeholder the renderer does not know stops the render', () => {
    expect(() => renderEdgeConfig(readConfig(edgeEnvironmentSchema, env), 'listen {{NO_SUCH_SETTING}};')).toThrow(/NO_SUCH_SETTING/);
  });
});
