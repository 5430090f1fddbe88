import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BASE_DOMAIN, sendRaw, startEdgeHarness, tokenFor, type Echo, type EdgeHarness, type Response } from './harness.js';

// Attacks on the request target that HTTP clients refuse to send, written byte for byte:
// absolute-form request lines whose host differs from the Host header, and paths that are
// malformed, traverse, or aim at the edge's internal locations.

let harness: EdgeHarness;
let tenantA: { id: string; slug: string };
let tenantB: { id: string; slug: string };
let domainOfB: string;

beforeAll(async () => {
  harness = await startEdgeHarness();
  tenantA = await harness.createTenant();
  tenantB = await harness.createTenant();
  domainOfB = `app.b-${randomBytes(4).toString('hex')}.test`;
  await harness.admin.query('INSERT INTO tenant_domains (tenant_id, domain, verified_at) VALUES ($1, $2, now())', [tenantB.id, domainOfB]);
});
afterAll(() => harness?.stop());

const hostOf = (tenant: { slug: string }) => `${tenant.slug}.${BASE_DOMAIN}`;

function raw(requestLine: string, headers: string[] = [], body = ''): Promise<Response> {
  const head = [requestLine, ...headers, 'Connection: close', ...(body ? [`Content-Length: ${Buffer.byteLength(body)}`] : [])];
  return sendRaw(harness.edge.url, `${head.join('\r\n')}\r\n\r\n${body}`);
}

const fromUpstream = (response: Response) => response.headers['x-upstream'] === 'echo';
const echoed = (response: Response) => response.json as Echo;

/** The edge refused it itself, in the shared shape (GraphQL's on the GraphQL route). */
function expectRefusal(response: Response, label: string, { graphql = false, statuses = [400, 404] } = {}) {
  expect(statuses, `${label}: status ${response.status} ${response.text}`).toContain(response.status);
  expect(fromUpstream(response), `${label} reached an upstream`).toBe(false);
  expect(response.headers['content-type'], label).toMatch(/^application\/json/);
  if (graphql) {
    expect(response.json, label).toEqual({ errors: [{ message: expect.any(String), extensions: { code: expect.any(String) } }] });
  } else {
    expect(response.json, label).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
  }
}

describe('an absolute-form request line names the host, whatever the Host header says', () => {
  test("tenant B's host in the request line, tenant A's in Host: the upstream sees B and B's tenant, never A with Host B", async () => {
    const response = await raw(`POST http://${hostOf(tenantB)}/v1/graphql HTTP/1.1`, [`Host: ${hostOf(tenantA)}`, 'Content-Type: application/json'], '{}');
    expect(response.status, response.text).toBe(200);
    const seen = echoed(response).headers;
    expect([seen.host, seen['x-tenant-id'], seen['x-hasura-tenant-id'], seen['x-tenant-slug']]).toEqual([hostOf(tenantB), tenantB.id, tenantB.id, tenantB.slug]);
    expect(echoed(response).url).toBe('/v1/graphql');
  });

  test('upper case and a port in the request line resolve like the same host would', async () => {
    const response = await raw(`GET http://${hostOf(tenantB).toUpperCase()}:8443/storage/x HTTP/1.1`, [`Host: ${hostOf(tenantA)}`]);
    expect(response.status, response.text).toBe(200);
    expect([echoed(response).headers.host, echoed(response).headers['x-tenant-id']]).toEqual([hostOf(tenantB), tenantB.id]);
  });

  test("a custom domain in the request line, another tenant's subdomain in Host, and the other way round", async () => {
    const toDomain = await raw(`POST http://${domainOfB}/v1/graphql HTTP/1.1`, [`Host: ${hostOf(tenantA)}`], '{}');
    expect(toDomain.status, toDomain.text).toBe(200);
    expect([echoed(toDomain).headers.host, echoed(toDomain).headers['x-tenant-id']]).toEqual([domainOfB, tenantB.id]);

    const toSubdomain = await raw(`POST http://${hostOf(tenantA)}/v1/graphql HTTP/1.1`, [`Host: ${domainOfB}`], '{}');
    expect(toSubdomain.status, toSubdomain.text).toBe(200);
    expect([echoed(toSubdomain).headers.host, echoed(toSubdomain).headers['x-tenant-id']]).toEqual([hostOf(tenantA), tenantA.id]);
  });

  test('a request-line host that names no tenant is not rescued by the Host header', async () => {
    const response = await raw(`GET http://www.${BASE_DOMAIN}/storage/x HTTP/1.1`, [`Host: ${hostOf(tenantA)}`]);
    expect([response.status, response.json?.error?.code]).toEqual([400, 'tenant_required']);
    expect(fromUpstream(response)).toBe(false);
  });

  test("a token of tenant A on tenant B's request-line host is a mismatch, even with Host A", async () => {
    const response = await raw(`POST http://${hostOf(tenantB)}/v1/graphql HTTP/1.1`, [`Host: ${hostOf(tenantA)}`, `Authorization: Bearer ${tokenFor(tenantA.id)}`], '{}');
    expect(response.status, response.text).toBe(403);
    expect(response.json.errors[0].extensions.code).toBe('tenant_mismatch');
    expect(fromUpstream(response)).toBe(false);
  });
});

describe('bad request paths are refused with 400 or 404 in the shared shape, never 500, and reach no upstream', () => {
  const host = () => `Host: ${hostOf(tenantA)}`;

  test.each([
    ['/v1/graphql%00', true],
    ['/v1/graphql/%00', true],
    ['/v1/graphql%2500%00', true],
    ['/auth/..%2f..%2finternal/resolve', false],
    ['/auth/..%2F..%2F_edge/resolve', false],
    ['/../../etc/passwd', false],
    ['/%2e%2e/%2e%2e/etc/passwd', false],
    ['/auth/%2E%2E/%2E%2E/etc/passwd', false],
    ['/auth/a%00b', false],
    ['/storage/x%00.json', false],
    ['/auth/%zz', false],
    ['/auth/%', false],
    ['/auth/%e', false],
    ['/storage/%c0%ae%c0%ae/x', false],
    ['/auth/x/..%2f..%2fstorage/x', false],
    ['/storage/x/%2e%2e/%2e%2e/auth/login', false],
    ['/storage/a%2fb', false],
    ['/auth/..\\..\\internal\\resolve', false],
    ['/auth/%5c..%5cinternal', false],
    // Routed by where it lands (/auth/login), so answered in that route's shape.
    ['/v1/graphql/..%2f..%2fauth/login', false],
    ['/v1/graphql/%2e%2e/%2e%2e/auth/login', false],
    ['/auth/.', false],
    ['/storage/x/..', false],
  ])('GET %s', async (path, graphql) => {
    const response = await raw(`GET ${path} HTTP/1.1`, [host(), `X-Tenant-Slug: ${tenantA.slug}`]);
    expectRefusal(response, path, { graphql });
  });

  test('an overlong path, on the GraphQL route and elsewhere', async () => {
    for (const [path, graphql] of [[`/v1/graphql/${'a'.repeat(20_000)}`, true], [`/storage/${'a'.repeat(20_000)}`, false]] as const) {
      expectRefusal(await raw(`GET ${path} HTTP/1.1`, [host()]), path.slice(0, 20), { graphql });
    }
  });

  test('the same paths in absolute form', async () => {
    for (const path of ['/v1/graphql%00', '/auth/..%2f..%2finternal/resolve', '/../../etc/passwd', '/auth/x/..%2f..%2fstorage/x']) {
      const response = await raw(`GET http://${hostOf(tenantA)}${path} HTTP/1.1`, [host()]);
      expectRefusal(response, path, { graphql: path.startsWith('/v1/graphql') });
    }
  });

  test("no internal location is reachable from outside: the resolver's answers never leave the edge", async () => {
    const query = `?by=id&value=${tenantA.id}`;
    for (const path of [
      `/_edge/resolve${query}`,
      `/_edge/resolve/${query}`,
      `//_edge/resolve${query}`,
      `/_edge/./resolve${query}`,
      `/auth/../_edge/resolve${query}`,
      `/auth/x/..%2f..%2f_edge/resolve${query}`,
      `/%5f_edge/resolve${query}`,
      `/_edge%2fresolve${query}`,
      `/_EDGE/resolve${query}`,
      `/internal/resolve${query}`,
      `/auth/../internal/resolve${query}`,
      `/_edge/error/bad_request`,
      `/_edge/error/not_found`,
    ]) {
      const response = await raw(`GET ${path} HTTP/1.1`, [host()]);
      expectRefusal(response, path);
      expect(response.text, path).not.toContain(tenantA.id);
    }
  });

  test('ordinary encoded characters, dot files and anything in the query string still pass', async () => {
    const response = await raw('GET /storage/caf%C3%A9%20menu.json?q=%2e%2e%2f%00 HTTP/1.1', [host()]);
    expect(response.status, response.text).toBe(200);
    expect(echoed(response).url).toBe('/storage/caf%C3%A9%20menu.json?q=%2e%2e%2f%00');
    const wellKnown = await raw('GET /auth/.well-known/jwks.json HTTP/1.1', [host()]);
    expect([wellKnown.status, echoed(wellKnown).url]).toEqual([200, '/auth/.well-known/jwks.json']);
  });
});

describe("nginx's own refusals after a route is chosen keep that route's shape", () => {
  test('a declared body over the limit: 413 in each shape', async () => {
    for (const [path, graphql] of [['/v1/graphql', true], ['/storage/x', false]] as const) {
      const response = await raw(`POST ${path} HTTP/1.1`, [`Host: ${hostOf(tenantA)}`, 'Content-Length: 99999999999']);
      expectRefusal(response, path, { graphql, statuses: [413] });
      expect(graphql ? response.json.errors[0].extensions.code : response.json.error.code).toBe('payload_too_large');
    }
  });

  test('a broken chunked body: 400 in each shape', async () => {
    for (const [path, graphql] of [['/v1/graphql', true], ['/storage/x', false]] as const) {
      const response = await sendRaw(
        harness.edge.url,
        `POST ${path} HTTP/1.1\r\nHost: ${hostOf(tenantA)}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nnot a chunk\r\n`,
      );
      expectRefusal(response, path, { graphql, statuses: [400] });
    }
  });
});

describe('hostile request lines and headers never get a 5xx', () => {
  const long = 'a'.repeat(20_000);
  const cases: Array<[string, string]> = [
    ['HTTP/2.0 over HTTP/1', 'GET /storage/x HTTP/2.0\r\nHost: h'],
    ['HTTP/9.9', 'GET /storage/x HTTP/9.9\r\nHost: h'],
    ['asterisk form', 'GET * HTTP/1.1\r\nHost: h'],
    ['CONNECT', 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443'],
    ['unknown transfer coding', 'POST /auth/login HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip'],
    ['Content-Length and chunked', 'POST /auth/login HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked'],
    ['non-numeric Content-Length', 'POST /auth/login HTTP/1.1\r\nHost: h\r\nContent-Length: 1e3'],
    ['two Content-Lengths', 'POST /auth/login HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2'],
    ['oversized URI', `GET /${long} HTTP/1.1\r\nHost: h`],
    ['oversized header', `GET /storage/x HTTP/1.1\r\nHost: h\r\nX-Big: ${long}`],
    ['header without a colon', 'GET /storage/x HTTP/1.1\r\nHost: h\r\nNoColonHere'],
    ['space in a header name', 'GET /storage/x HTTP/1.1\r\nHost: h\r\nBad Header: x'],
    ['two Host headers', 'GET /storage/x HTTP/1.1\r\nHost: a.test\r\nHost: b.test'],
    ['no Host on HTTP/1.1', 'GET /storage/x HTTP/1.1'],
    ['a Host with a slash', 'GET /storage/x HTTP/1.1\r\nHost: a/b.test'],
    ['absolute form with a user', `GET http://user@${BASE_DOMAIN}/storage/x HTTP/1.1\r\nHost: h`],
    ['absolute form with a bad port', `GET http://${BASE_DOMAIN}:99999999/storage/x HTTP/1.1\r\nHost: h`],
    ['control character in the path', 'GET /storage/\x01x HTTP/1.1\r\nHost: h'],
    ['NUL in a header value', 'GET /storage/x HTTP/1.1\r\nHost: h\r\nX-Tenant-Slug: a\x00b'],
    ['garbage method', 'G\x7fT /storage/x HTTP/1.1\r\nHost: h'],
    ['bare LF line ends', 'GET /storage/x%00 HTTP/1.1\nHost: h'],
  ];

  test.each(cases)('%s', async (label, head) => {
    const response = await sendRaw(harness.edge.url, `${head}\r\nConnection: close\r\n\r\n`);
    expect(response.status, `${label}: ${response.text}`).toBeGreaterThanOrEqual(400);
    expect(response.status, `${label}: ${response.text}`).toBeLessThan(500);
    expect(fromUpstream(response), label).toBe(false);
    expect(response.json, label).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
  });
});

test('nginx logged no [error] for all of the above but its reports of the bodies it refused', async () => {
  // A failed redirect to an error page, or a Lua error in one, would show here.
  const clientFaults = /client intended to send too large body|client sent invalid chunked body/;
  const log = await readFile(harness.edge.errorLog, 'utf8');
  const errors = log.split('\n').filter((line) => /\[(error|crit|alert|emerg)\]/.test(line) && !clientFaults.test(line));
  expect(errors).toEqual([]);
});
