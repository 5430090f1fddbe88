import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startEdgeHarness, type EdgeHarness } from './harness.js';

let harness: EdgeHarness;
let tlsPort: number;
const certificates = mkdtempSync(path.join(os.tmpdir(), 'tenantry-tls-'));

beforeAll(async () => {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=example-saas.test',
    '-keyout', path.join(certificates, 'privkey.pem'), '-out', path.join(certificates, 'fullchain.pem'),
  ], { stdio: 'ignore' });
  tlsPort = await getPort();
  harness = await startEdgeHarness({
    EDGE_TLS_PORT: String(tlsPort),
    EDGE_TLS_CERTIFICATE: path.join(certificates, 'fullchain.pem'),
    EDGE_TLS_CERTIFICATE_KEY: path.join(certificates, 'privkey.pem'),
  });
});
afterAll(async () => {
  await harness?.stop();
  rmSync(certificates, { recursive: true, force: true });
});

test('the edge terminates TLS with the configured certificate and resolves tenants behind it', async () => {
  const tenant = await harness.createTenant();
  const answer = await new Promise<{ status: number; hsts: string | undefined; body: string }>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: tlsPort, path: '/storage/x', servername: 'example-saas.test', rejectUnauthorized: false, headers: { 'X-Tenant-Slug': tenant.slug } },
      (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, hsts: res.headers['strict-transport-security'] as string | undefined, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
  expect(answer.status).toBe(200);
  expect(answer.hsts).toMatch(/max-age=/);
  expect(JSON.parse(answer.body).headers['x-tenant-id']).toBe(tenant.id);
  expect(JSON.parse(answer.body).headers['x-forwarded-proto']).toBe('https');
});
