import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import type { Client } from 'minio';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createS3Client } from '../../services/shared/src/storage/location.js';
import type { EdgeInstance } from '../../scripts/native/edge.js';
import { services } from '../helpers/database.js';
import { BASE_DOMAIN, send, sendRaw, startEdgeHarness, tokenFor, type EdgeHarness, type Echo } from './harness.js';

const S3_HOST = `s3.${BASE_DOMAIN}`;
const REGION = 'us-east-1';
const ORIGIN = 'https://app.customer.example';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  /** Name, value, name, value…: what the edge sent, repeated headers apart. */
  rawHeaders: string[];
  body: Buffer;
}

/**
 * A request as a client outside the network makes it: to the edge's port, with the Host
 * and the request target of `url` exactly as they are written there (fetch cannot set Host).
 */
function through(edge: { url: string }, url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Answer> {
  const [, host, target] = /^https?:\/\/([^/]+)(\/.*)$/.exec(url) ?? [];
  if (!host || !target) throw new Error(`not an absolute URL: ${url}`);
  const { port } = new URL(edge.url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: target, method: options.method ?? 'GET', headers: { host, ...options.headers }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    // A client that asked to be told to go on (Expect: 100-continue, as AWS SDKs do for large bodies) waits for it.
    if (options.headers?.Expect) req.on('continue', () => req.end(options.body));
    else req.end(options.body);
  });
}

/** Every value of a response header, however many times it was sent. */
function allValues(answer: Answer, name: string): string[] {
  const values: string[] = [];
  for (let index = 0; index < answer.rawHeaders.length; index += 2) {
    if (answer.rawHeaders[index]!.toLowerCase() === name) values.push(answer.rawHeaders[index + 1]!);
  }
  return values;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

let harness: EdgeHarness;
/** An edge with MinIO behind its S3 host. */
let minioEdge: EdgeInstance;
/** An edge with the echo upstream behind its S3 host: shows what reaches the S3 server. */
let echoEdge: EdgeInstance;
/** MinIO, directly, with the root credentials: to make the bucket and look at what was stored. */
let direct: Client;
/** Presigns for the S3 host on minioEdge's port, as the storage service does for S3_PUBLIC_ENDPOINT. */
let presigner: Client;
const bucket = `edge-s3-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  const { s3 } = services().endpoints;
  const minioAddress = new URL(s3.endpoint).host;
  const credentials = { accessKey: s3.accessKey, secretKey: s3.secretKey, region: REGION };
  // The harness's own edge has no S3 server: its S3 host answers 503.
  harness = await startEdgeHarness({ CLIENT_MAX_BODY_SIZE: '1m' });
  minioEdge = await harness.startAnotherEdge({ S3_UPSTREAM: minioAddress });
  echoEdge = await harness.startAnotherEdge({ S3_UPSTREAM: harness.echoAddress });
  direct = createS3Client(s3.endpoint, credentials);
  presigner = createS3Client(`http://${S3_HOST}:${new URL(minioEdge.url).port}`, credentials);
  await direct.makeBucket(bucket, REGION);
  // Read by several tests, so none depends on another's upload.
  await direct.putObject(bucket, 'shared/object.txt', Buffer.from('shared object'));
}, 60_000);

afterAll(async () => {
  if (direct) {
    const names: string[] = [];
    for await (const item of direct.listObjectsV2(bucket, '', true)) if (item.name) names.push(item.name);
    await direct.removeObjects(bucket, names);
    await direct.removeBucket(bucket);
  }
  await harness?.stop();
});

describe('presigned URLs through s3.<BASE_DOMAIN>', () => {
  test('a presigned PUT stores the bytes, and a presigned GET reads them back: the signature holds through the edge', async () => {
    const body = randomBytes(100_000);
    const put = await through(minioEdge, await presigner.presignedPutObject(bucket, 'plain/object.bin', 300), { method: 'PUT', body });
    expect(put.status, put.body.toString()).toBe(200);
    const got = await through(minioEdge, await presigner.presignedGetObject(bucket, 'plain/object.bin', 300));
    expect(got.status).toBe(200);
    expect(sha256(got.body)).toBe(sha256(body));
    expect((await direct.statObject(bucket, 'plain/object.bin')).size).toBe(body.length);
  });

  test("a tenant's HTML opened by a presigned GET runs sandboxed, never as a page of the platform's domain", async () => {
    await direct.putObject(bucket, 'page/index.html', '<script>alert(document.domain)</script>', undefined, { 'Content-Type': 'text/html' });
    const got = await through(minioEdge, await presigner.presignedGetObject(bucket, 'page/index.html', 300));
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('text/html');
    expect(got.headers['content-security-policy']).toBe('sandbox');
    expect(got.headers['x-content-type-options']).toBe('nosniff');
  });

  test('a client that sends Expect: 100-continue is told to go on, and its upload lands', async () => {
    const body = randomBytes(3 * 1024 * 1024);
    const url = await presigner.presignedPutObject(bucket, 'continue/object.bin', 300);
    const put = await through(minioEdge, url, { method: 'PUT', headers: { Expect: '100-continue', 'Content-Length': String(body.length) }, body });
    expect(put.status, put.body.toString()).toBe(200);
    expect((await direct.statObject(bucket, 'continue/object.bin')).size).toBe(body.length);
  });

  test('keys with spaces, unicode and + reach MinIO as the key they were signed for', async () => {
    for (const key of ['with spaces/a b  c.txt', 'unicode/café 日本語 ☃.txt', 'plus/a+b+ c%d.txt']) {
      const body = Buffer.from(`content of ${key}`);
      const put = await through(minioEdge, await presigner.presignedPutObject(bucket, key, 300), { method: 'PUT', body });
      expect(put.status, `${key}: ${put.body.toString()}`).toBe(200);
      // The exact name, not one with + read as a space or the encoding undone twice.
      expect((await direct.statObject(bucket, key)).size, key).toBe(body.length);
      const got = await through(minioEdge, await presigner.presignedGetObject(bucket, key, 300));
      expect([got.status, got.body.toString()], key).toEqual([200, body.toString()]);
    }
  });

  test('a presigned POST (a browser form upload) works through the edge, and its policy still binds', async () => {
    const key = 'form/upload.txt';
    const file = Buffer.from('uploaded by a form');
    const policy = presigner.newPostPolicy();
    policy.setBucket(bucket);
    policy.setKey(key);
    policy.setExpires(new Date(Date.now() + 10 * 60_000));
    policy.setContentType('text/plain');
    policy.setContentLengthRange(file.length, file.length);
    const { postURL, formData } = await presigner.presignedPostPolicy(policy);
    expect(postURL).toBe(`http://${S3_HOST}:${new URL(minioEdge.url).port}/${bucket}`);
    const post = (bytes: Buffer) => {
      const boundary = `----edge${randomBytes(8).toString('hex')}`;
      const parts = Object.entries(formData).map(([name, value]) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`);
      const body = Buffer.concat([
        Buffer.from(parts.join('')),
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload.txt"\r\nContent-Type: text/plain\r\n\r\n`),
        bytes,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      return through(minioEdge, postURL, { method: 'POST', headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` }, body });
    };
    const tooLong = await post(Buffer.concat([file, Buffer.from('!')]));
    expect(tooLong.status, tooLong.body.toString()).toBe(400);
    expect(tooLong.body.toString()).toContain('EntityTooLarge');
    const accepted = await post(file);
    expect(accepted.status, accepted.body.toString()).toBe(204);
    const stored = await direct.getObject(bucket, key);
    const chunks: Buffer[] = [];
    for await (const chunk of stored) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe(file.toString());
  });

  test('a 70 MiB object passes the S3 host both ways, while the API routes keep their body limit', async () => {
    const body = randomBytes(70 * 1024 * 1024);
    const put = await through(minioEdge, await presigner.presignedPutObject(bucket, 'large/70mib.bin', 300), { method: 'PUT', body });
    expect(put.status, put.body.toString()).toBe(200);
    expect((await direct.statObject(bucket, 'large/70mib.bin')).size).toBe(body.length);
    const got = await through(minioEdge, await presigner.presignedGetObject(bucket, 'large/70mib.bin', 300));
    expect([got.status, got.body.length]).toEqual([200, body.length]);
    expect(sha256(got.body)).toBe(sha256(body));
    // The same edge, its API host: this harness's limit is 1 MiB.
    const tenant = await harness.createTenant();
    for (const path of ['/storage/uploads', '/billing/x']) {
      const refused = await sendRaw(minioEdge.url, `POST ${path} HTTP/1.1\r\nHost: ${tenant.slug}.${BASE_DOMAIN}\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`);
      expect([refused.status, refused.json?.error?.code], path).toEqual([413, 'payload_too_large']);
    }
  }, 120_000);

  test('a tampered signature, or the URL presented for another host, is refused by MinIO and its 403 passes through', async () => {
    const url = await presigner.presignedGetObject(bucket, 'shared/object.txt', 300);
    const signature = /X-Amz-Signature=([0-9a-f]+)/.exec(url)![1]!;
    const tampered = url.replace(signature, `${signature.slice(0, -1)}${signature.endsWith('0') ? '1' : '0'}`);
    const refused = await through(minioEdge, tampered, { headers: { Origin: ORIGIN } });
    expect(refused.status).toBe(403);
    expect(refused.body.toString()).toContain('SignatureDoesNotMatch');
    // A browser may read S3's refusal too.
    expect(allValues(refused, 'access-control-allow-origin')).toEqual([ORIGIN]);
    // The Host is signed: the edge passes it as sent, so a URL signed for another host fails.
    const otherHost = url.replace(`//${S3_HOST}:`, `//${S3_HOST.toUpperCase()}.:`);
    expect((await through(minioEdge, otherHost)).status).toBe(403);
  });
});

describe('CORS on the S3 host', () => {
  test('a preflight is answered by the edge: 204, the origin echoed once, the methods and the asked-for headers, no credentials', async () => {
    const url = await presigner.presignedPutObject(bucket, 'cors/object.txt', 300);
    const preflight = await through(minioEdge, url, {
      method: 'OPTIONS',
      headers: { Origin: ORIGIN, 'Access-Control-Request-Method': 'PUT', 'Access-Control-Request-Headers': 'content-type,x-amz-checksum-sha256' },
    });
    expect(preflight.status).toBe(204);
    expect(allValues(preflight, 'access-control-allow-origin')).toEqual([ORIGIN]);
    expect(allValues(preflight, 'access-control-allow-methods')).toEqual(['GET, HEAD, PUT, POST, DELETE']);
    expect(allValues(preflight, 'access-control-allow-headers')).toEqual(['content-type,x-amz-checksum-sha256']);
    expect(allValues(preflight, 'access-control-max-age')).toEqual(['3600']);
    expect(preflight.headers['access-control-allow-credentials']).toBeUndefined();
  });

  test("an answer from MinIO carries the edge's CORS headers once each, and none of MinIO's", async () => {
    const url = await presigner.presignedGetObject(bucket, 'shared/object.txt', 300);
    // MinIO adds its own when asked directly: without the edge hiding them there would be two.
    const { endpoint } = services().endpoints.s3;
    const minioOwn = await through({ url: endpoint }, await direct.presignedGetObject(bucket, 'shared/object.txt', 300), { headers: { Origin: ORIGIN } });
    expect(minioOwn.status).toBe(200);
    expect(allValues(minioOwn, 'access-control-allow-origin')).toHaveLength(1);
    const got = await through(minioEdge, url, { headers: { Origin: ORIGIN } });
    expect(got.status).toBe(200);
    expect(allValues(got, 'access-control-allow-origin')).toEqual([ORIGIN]);
    expect(allValues(got, 'access-control-expose-headers')).toEqual(['ETag, x-amz-checksum-sha256, x-amz-version-id, Content-Length']);
    expect(got.headers['access-control-allow-credentials']).toBeUndefined();
    expect(got.headers['access-control-allow-methods']).toBeUndefined();
    expect(got.headers.etag).toBeTruthy();
    // Without an Origin no CORS header at all.
    const plain = await through(minioEdge, url);
    expect(Object.keys(plain.headers).filter((name) => name.startsWith('access-control-'))).toEqual([]);
  });
});

describe('what reaches the S3 server', () => {
  test('the Host and the request target exactly as sent, and none of the edge-only headers', async () => {
    const { port } = new URL(echoEdge.url);
    const host = `S3.Example-SaaS.test:${port}`;
    const target = '/bucket/a%20b//caf%C3%A9+x%2By/%7Etilde?X-Amz-Signature=abc&list-type=2&prefix=a%2Fb+c';
    const tenant = await harness.createTenant();
    const response = await sendRaw(
      echoEdge.url,
      [
        `PUT ${target} HTTP/1.1`,
        `Host: ${host}`,
        `Authorization: Bearer ${tokenFor(tenant.id)}`,
        `X-Tenant-Id: ${tenant.id}`,
        `X-Tenant-Slug: ${tenant.slug}`,
        'X-Hasura-Role: admin',
        'X-Hasura-Tenant-Id: 00000000-0000-0000-0000-000000000000',
        'X-Request-Id: client-chosen',
        'Content-Length: 5',
        '',
        'hello',
      ].join('\r\n'),
    );
    expect(response.status, response.text).toBe(200);
    const echo = response.json as Echo;
    expect(echo.method).toBe('PUT');
    expect(echo.url).toBe(target);
    expect(echo.headers.host).toBe(host);
    expect(Buffer.from(echo.body, 'base64').toString()).toBe('hello');
    // No tenant is named here, whatever the client says, and nothing of the tenant's is counted.
    for (const name of ['x-tenant-id', 'x-tenant-slug', 'x-hasura-role', 'x-hasura-tenant-id']) expect(echo.headers[name], name).toBeUndefined();
    expect(echo.headers['x-request-id']).not.toBe('client-chosen');
    expect(echo.headers['x-request-id']).toBe(response.headers['x-request-id']);
    expect(Object.keys(response.headers).filter((name) => name.startsWith('x-quota-') || name.startsWith('x-ratelimit-'))).toEqual([]);
    // HTTP/1.1 without `Connection: close`: the connection to the S3 server is kept for the next request.
    expect(echo.headers.connection).toBeUndefined();
  });

  test('s3.<BASE_DOMAIN> is never a tenant: any path there goes to the S3 server, and the slug s3 names no tenant', async () => {
    for (const host of [S3_HOST, S3_HOST.toUpperCase(), `${S3_HOST}.`]) {
      const answer = await send(echoEdge.url, '/storage/files', { host });
      expect(answer.headers['x-upstream'], host).toBe('echo');
      expect((answer.json as Echo).url).toBe('/storage/files');
      expect((answer.json as Echo).headers['x-tenant-id']).toBeUndefined();
    }
    // On the MinIO edge the same path is an S3 request (a bucket named "storage"), not the storage service.
    const minio = await send(minioEdge.url, '/storage/files', { host: S3_HOST });
    expect(minio.headers['x-upstream']).toBeUndefined();
    expect(minio.text).toMatch(/<Error>/);
    // Too short for a slug already (three characters at least), and reserved besides.
    const bySlug = await send(minioEdge.url, '/storage/files', { headers: { 'X-Tenant-Slug': 's3' } });
    expect([bySlug.status, bySlug.json?.error?.code]).toEqual([400, 'invalid_tenant_header']);
    await expect(harness.admin.query("INSERT INTO tenants (slug, name, plan_id) VALUES ('s3', 's3', 'pro')")).rejects.toThrow(/tenants_slug_valid/);
  });

  test('without S3_UPSTREAM the S3 host answers 503 upstream_unavailable in the error shape; an S3 server that is down, the same', async () => {
    const unset = await send(harness.edge.url, `/${bucket}/shared/object.txt`, { host: S3_HOST });
    expect([unset.status, unset.json?.error?.code]).toEqual([503, 'upstream_unavailable']);
    expect(unset.json.error.message).toMatch(/not configured/);
    expect(unset.headers['x-request-id']).toBeTruthy();
    const down = await harness.startAnotherEdge({ S3_UPSTREAM: '127.0.0.1:9' });
    const refused = await send(down.url, `/${bucket}/shared/object.txt`, { host: S3_HOST });
    expect([refused.status, refused.json?.error?.code]).toEqual([503, 'upstream_unavailable']);
  });
});

test('over TLS the S3 host serves presigned URLs signed for https, with the edge\'s certificate and HSTS', async () => {
  const certificates = mkdtempSync(path.join(os.tmpdir(), 'tenantry-s3-tls-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=*.${BASE_DOMAIN}`,
      '-keyout', path.join(certificates, 'privkey.pem'), '-out', path.join(certificates, 'fullchain.pem'),
    ], { stdio: 'ignore' });
    const tlsPort = await getPort();
    await harness.startAnotherEdge({
      S3_UPSTREAM: new URL(services().endpoints.s3.endpoint).host,
      EDGE_TLS_PORT: String(tlsPort),
      EDGE_TLS_CERTIFICATE: path.join(certificates, 'fullchain.pem'),
      EDGE_TLS_CERTIFICATE_KEY: path.join(certificates, 'privkey.pem'),
    });
    const { s3 } = services().endpoints;
    const httpsPresigner = createS3Client(`https://${S3_HOST}:${tlsPort}`, { accessKey: s3.accessKey, secretKey: s3.secretKey, region: REGION });
    const overTls = (url: string, method: string, body?: Buffer) =>
      new Promise<{ status: number; hsts: unknown; body: string }>((resolve, reject) => {
        const [, host, target] = /^https:\/\/([^/]+)(\/.*)$/.exec(url)!;
        const req = httpsRequest(
          { host: '127.0.0.1', port: tlsPort, path: target, method, servername: S3_HOST, rejectUnauthorized: false, headers: { host: host! }, agent: false },
          (res) => {
            let text = '';
            res.on('data', (chunk) => (text += chunk));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, hsts: res.headers['strict-transport-security'], body: text }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const put = await overTls(await httpsPresigner.presignedPutObject(bucket, 'tls/object.txt', 300), 'PUT', Buffer.from('over tls'));
    expect(put.status, put.body).toBe(200);
    const got = await overTls(await httpsPresigner.presignedGetObject(bucket, 'tls/object.txt', 300), 'GET');
    expect([got.status, got.body]).toEqual([200, 'over tls']);
    expect(got.hsts).toMatch(/max-age=/);
  } finally {
    rmSync(certificates, { recursive: true, force: true });
  }
});

describe('/storage/* on the API host', () => {
  test('the storage service gets the tenant like billing does; its description needs none', async () => {
    const described = await send(harness.edge.url, '/storage/openapi.json');
    expect([described.status, described.headers['x-upstream']]).toEqual([200, 'echo']);
    const unnamed = await send(harness.edge.url, '/storage/files');
    expect([unnamed.status, unnamed.json?.error?.code]).toEqual([400, 'tenant_required']);
    const tenant = await harness.createTenant();
    await harness.admin.query('UPDATE tenants SET max_api_requests_month = 1000 WHERE id = $1', [tenant.id]);
    const named = await send(harness.edge.url, '/storage/files?cursor=x', { headers: { Authorization: `Bearer ${tokenFor(tenant.id)}` } });
    expect(named.status).toBe(200);
    expect((named.json as Echo).headers['x-tenant-id']).toBe(tenant.id);
    expect((named.json as Echo).url).toBe('/storage/files?cursor=x');
    // Counted toward the monthly quota like every request with a token.
    expect(named.headers['x-quota-limit']).toBe('1000');
  });
});
