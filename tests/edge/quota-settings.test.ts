import { describe, expect, test } from 'vitest';
import { readConfig } from '../../services/shared/src/config.js';
import { edgeEnvironmentSchema, renderEdgeConfig } from '../../scripts/edge/render.js';

const env = {
  BASE_DOMAIN: 'example-saas.com',
  HASURA_UPSTREAM: 'hasura:8080',
  AUTH_UPSTREAM: 'auth:4002',
  BILLING_UPSTREAM: 'billing:4003',
  STORAGE_UPSTREAM: 'storage:4004',
  RESOLVER_UPSTREAM: 'resolver:4001',
  RESOLVER_SECRET: 'resolver-secret-0123456789',
  EDGE_PURGE_SECRET: 'purge-secret-0123456789',
  REDIS_URL: 'redis://redis:6379',
};

const settings = (overrides: Record<string, string | undefined>) =>
  JSON.parse(renderEdgeConfig(readConfig(edgeEnvironmentSchema, { ...env, ...overrides }), '/etc/tenantry-edge/nginx.conf').settingsJson);

describe('quota and rate-limit settings', () => {
  test('defaults: per-node rate limit, 20 anonymous requests a second per address, usage:api, the real clock', () => {
    expect(settings({})).toMatchObject({
      rate_limit_scope: 'node',
      anonymous_rps: 20,
      quota_max_lease: 200,
      quota_idle_seconds: 1,
      redis_timeout_ms: 100,
      redis_retry_interval: 2,
      usage_stream: 'usage:api',
      clock_offset: 0,
    });
  });

  test('the settings pass to the Lua as given; a cluster scope needs Redis; bad values are refused', () => {
    expect(settings({ EDGE_RATE_LIMIT_SCOPE: 'cluster', EDGE_TEST_CLOCK_OFFSET_SECONDS: '-12.5', EDGE_ANONYMOUS_RATE_LIMIT_RPS: '0' })).toMatchObject({
      rate_limit_scope: 'cluster',
      clock_offset: -12.5,
      anonymous_rps: 0,
    });
    expect(() => settings({ EDGE_RATE_LIMIT_SCOPE: 'cluster', REDIS_URL: undefined })).toThrow(/REDIS_URL/);
    expect(() => settings({ EDGE_RATE_LIMIT_SCOPE: 'global' })).toThrow();
    expect(() => settings({ EDGE_ANONYMOUS_RATE_LIMIT_RPS: '-1' })).toThrow();
    expect(() => settings({ EDGE_QUOTA_MAX_LEASE: '0' })).toThrow();
  });
});
