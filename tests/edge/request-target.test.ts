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

describe('a path that is not well-formed UTF-8 once decoded is refused (RFC 3629)', () => {
  const host = () => `Host: ${hostOf(tenantA)}`;

  // Each decodes to bytes some server behind us may read as another character: an overlong
  // "." or "/", a UTF-16 surrogate (CESU-8), a code point above U+10FFFF, or a broken sequence.
  test.each([
    ['overlong 3-byte "."', '/storage/%e0%80%ae'],
    ['overlong 3-byte "/" between dots', '/storage/x/%e0%80%ae%e0%80%ae%e0%80%afauth/login'],
    ['overlong 3-byte, highest', '/storage/%e0%9f%bf'],
    ['CESU-8 high surrogate', '/storage/%ed%a0%80'],
    ['CESU-8 low surrogate', '/storage/%ed%bf%bf'],
    ['CESU-8 surrogate pair', '/storage/%ed%a0%bd%ed%b8%80'],
    ['overlong 4-byte "."', '/storage/%f0%80%80%ae'],
    ['overlong 4-byte, highest', '/storage/%f0%8f%bf%bf'],
    ['above U+10FFFF', '/storage/%f4%90%80%80'],
    ['5-byte lead', '/storage/%f8%88%80%80%80'],
    ['overlong 2-byte "."', '/storage/%c0%ae'],
    ['lone continuation byte', '/storage/%80'],
    ['continuation byte after ASCII', '/storage/a%bfb'],
    ['continuation after a complete character', '/storage/%c3%a9%a9'],
    ['truncated 2-byte at the end', '/storage/caf%c3'],
    ['truncated 2-byte before ASCII', '/storage/caf%c3x'],
    ['truncated 3-byte', '/storage/%e6%bc'],
    ['truncated 3-byte before a slash', '/storage/%e6%bc/x'],
    ['truncated 4-byte', '/storage/%f0%9f%98'],
    ['lead byte instead of a continuation', '/storage/%e6%c3%a9'],
    ['valid character, then an invalid one', '/storage/caf%c3%a9/%ed%a0%80'],
    ['control character after a valid character', '/storage/caf%c3%a9%01'],
    ['on the GraphQL route', '/v1/graphql/%ed%a0%80'],
  ])('%s: GET %s', async (label, path) => {
    const response = await raw(`GET ${path} HTTP/1.1`, [host(), `X-Tenant-Slug: ${tenantA.slug}`]);
    expectRefusal(response, label, { graphql: path.startsWith('/v1/graphql'), statuses: [400] });
    expect(path.startsWith('/v1/graphql') ? response.json.errors[0].extensions.code : response.json.error.code).toBe('bad_request');
  });

  test('the same bytes sent raw, not percent-encoded, are refused too', async () => {
    for (const bytes of [[0xe0, 0x80, 0xae], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xc3]]) {
      const requestLine = Buffer.concat([Buffer.from('GET /storage/'), Buffer.from(bytes), Buffer.from(' HTTP/1.1')]);
      const response = await sendRaw(harness.edge.url, Buffer.concat([requestLine, Buffer.from(`\r\n${host()}\r\nConnection: close\r\n\r\n`)]));
      expectRefusal(response, Buffer.from(bytes).toString('hex'), { statuses: [400] });
    }
  });

  test.each([
    ['é', '/storage/caf%C3%A9'],
    ['漢', '/storage/%E6%BC%A2'],
    ['😀', '/storage/%F0%9F%98%80'],
    ['all three, lower-case escapes', '/storage/caf%c3%a9/%e6%bc%a2/%f0%9f%98%80.png'],
    ['U+0080 and U+07FF', '/storage/%C2%80%DF%BF'],
    ['U+0800 and U+D7FF', '/storage/%E0%A0%80%ED%9F%BF'],
    ['U+E000 and U+FFFF', '/storage/%EE%80%80%EF%BF%BF'],
    ['U+10000 and U+10FFFF', '/storage/%F0%90%80%80%F4%8F%BF%BF'],
    ['U+40000', '/storage/%F1%80%80%80'],
  ])('valid %s passes: GET %s', async (label, path) => {
    const response = await raw(`GET ${path} HTTP/1.1`, [host()]);
    expect(response.status, `${label}: ${response.text}`).toBe(200);
    expect(echoed(response).url).toBe(path);
  });

  test('UTF-8 sent raw, not percent-encoded, is refused in our shape: a request target is ASCII, and the services would refuse it in theirs', async () => {
    const head = Buffer.concat([Buffer.from('GET '), Buffer.from('/storage/café/漢/😀'), Buffer.from(` HTTP/1.1\r\n${host()}\r\nConnection: close\r\n\r\n`)]);
    const response = await sendRaw(harness.edge.url, head);
    expectRefusal(response, 'raw UTF-8', { statuses: [400] });
    expect(response.json.error.code).toBe('bad_request');
  });
});

describe('methods: what is not proxied is refused by the edge in the shared shape, never HTML', () => {
  const host = () => `Host: ${hostOf(tenantA)}`;
  const LONG_METHOD = 'A'.repeat(40);

  // [method, path, proxied]: proxied methods reach the echo upstream; every other gets a
  // 4xx from the edge itself in the shared shape (GraphQL's on the GraphQL route).
  test.each([
    ['TRACE', '/auth/me', false],
    ['TRACE', '/storage/x', false],
    ['TRACE', '/v1/graphql', false],
    ['TRACE', '/nowhere', false],
    ['TRACE', '/healthz', false],
    ['TRACE', 'http://{host}/v1/graphql', false],
    ['CONNECT', '/v1/graphql', false],
    ['TRACK', '/auth/me', false],
    ['TRACK', '/v1/graphql', false],
    ['PROPFIND', '/storage/x', false],
    ['PROPFIND', '/auth/me', false],
    ['MKCOL', '/storage/x/', false],
    [LONG_METHOD, '/auth/me', false],
    [LONG_METHOD, '/v1/graphql', false],
    ['get', '/auth/me', false],
    ['get', '/v1/graphql', false],
    ['GET', '/auth/me', true],
    ['HEAD', '/storage/x', true],
    ['POST', '/v1/graphql', true],
    ['PUT', '/storage/x', true],
    ['PATCH', '/auth/members/x', true],
    ['DELETE', '/storage/x', true],
    ['OPTIONS', '/auth/me', true],
  ] as const)('%s %s', async (method, path, proxied) => {
    const target = path.replace('{host}', hostOf(tenantA));
    const response = await raw(`${method} ${target} HTTP/1.1`, [host()]);
    const label = `${method.slice(0, 12)} ${target}: ${response.status} ${response.text}`;
    expect(response.status, label).toBeLessThan(500);
    if (proxied) {
      expect([response.status, fromUpstream(response)], label).toEqual([200, true]);
      if (method !== 'HEAD') expect(echoed(response).method, label).toBe(method);
      return;
    }
    expectRefusal(response, label, { graphql: path.includes('/v1/graphql'), statuses: [400, 405] });
    if (method !== 'get') {
      expect(response.status, label).toBe(405);
      expect(response.headers.allow, label).toBe('GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS');
    }
  });

  test("nginx's own 412 (If-Match on a response it makes itself) is in the shared shape too", async () => {
    const response = await raw('GET /healthz HTTP/1.1', [host(), 'If-Match: "no-such-etag"']);
    expectRefusal(response, '412', { statuses: [412] });
    expect(response.json.error.code).toBe('precondition_failed');
  });
});

test('nginx logged no [error] for all of the above but its reports of the bodies it refused', async () => {
  // A failed redirect to an error page, or a Lua error in one, would show here.
  const clientFaults = /client intended to send too large body|client sent invalid chunked body/;
  const log = await readFile(harness.edge.errorLog, 'utf8');
  const errors = log.split('\n').filter((line) => /\[(error|crit|alert|emerg)\]/.test(line) && !clientFaults.test(line));
  expect(errors).toEqual([]);
});
