/**
 * ATTACK: headers nginx accepts (large_client_header_buffers 4 16k) must never meet a
 * service's smaller limit: Node's default 16 KiB answered a bare 431, with no JSON body,
 * which the edge passed on. Services listen with createServiceServer (80 KiB); nginx stays
 * the one refusing oversized headers, in the shared shape.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createServiceServer } from '../../services/shared/src/http/serve.js';
import { send, startEdgeHarness, type EdgeHarness } from '../edge/harness.js';

const app = express();
app.all('/{*path}', (req, res) => {
  res.json({ headerBytes: req.rawHeaders.reduce((total, part) => total + part.length, 0) });
});

const kitServer = createServiceServer(app);
// What every service was before: Express's app.listen, Node's default header limit.
const plainServer = createServer(app);
let harness: EdgeHarness;
let tenantId: string;

const listen = (server: Server) => new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`)));

beforeAll(async () => {
  const [kit, plain] = await Promise.all([listen(kitServer), listen(plainServer)]);
  harness = await startEdgeHarness({ AUTH_UPSTREAM: kit, STORAGE_UPSTREAM: plain });
  tenantId = (await harness.createTenant()).id;
});
afterAll(async () => {
  await harness?.stop();
  await Promise.all([kitServer, plainServer].map((server) => new Promise((resolve) => server.close(resolve))));
});

const filler = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, index) => [`X-Filler-${index}`, 'a'.repeat(15 * 1024)]));

test('headers nginx lets through (3 lines of 15 KiB) reach a kit service and are answered by it', async () => {
  const response = await send(harness.edge.url, '/auth/login', { method: 'POST', headers: { ...filler(3), 'Content-Type': 'application/json' }, body: '{}' });
  expect(response.status, response.text).toBe(200);
  expect(response.json.headerBytes).toBeGreaterThan(45 * 1024);
});

test('the same headers to a server with Node\'s default limit: the bare 431 the kit prevents', async () => {
  const response = await send(harness.edge.url, '/storage/files', { headers: { ...filler(3), 'X-Tenant-ID': tenantId } });
  expect(response.status).toBe(431);
  expect(response.json).toBeUndefined();
});

test('headers over nginx\'s limit are refused by the edge itself, in the shared shape', async () => {
  const response = await send(harness.edge.url, '/auth/login', { method: 'POST', headers: { ...filler(6), 'Content-Type': 'application/json' }, body: '{}' });
  expect(response.status).toBe(400);
  expect(response.json.error.code).toBe('bad_request');
});
