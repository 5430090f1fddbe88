/**
 * The shared service kit (services/shared/src/http, auth/verifier): a tiny service built on
 * it, as billing or storage will be: operations and their OpenAPI document, parsing errors
 * in the catalog's codes, bearer tokens checked against the auth service's JWKS by a
 * verifier that holds no private key, a raw-body (webhook) route, and the header limit.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import jwt from 'jsonwebtoken';
import { pino } from 'pino';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { z } from 'zod';
import { KeyRing, exportPrivatePem } from '../../services/auth/src/keys.js';
import { TokenIssuer } from '../../services/auth/src/tokens.js';
import { TokenVerifier } from '../../services/shared/src/auth/verifier.js';
import { ERRORS } from '../../services/shared/src/errors/catalog.js';
import { errorHandler, notFoundHandler } from '../../services/shared/src/http/errors.js';
import { buildOpenApiDocument } from '../../services/shared/src/http/openapi.js';
import { mountOperations, operationsFor } from '../../services/shared/src/http/operation.js';
import { createServiceServer, SERVICE_MAX_HEADER_BYTES } from '../../services/shared/src/http/serve.js';

const ISSUER = 'https://auth.kit.test';
const AUDIENCE = 'tenantry-kit-test';
const WEBHOOK_SECRET = 'whsec_kit_test';
const TENANT = '0b6f1a52-7f6e-4c55-9d0e-0a1b2c3d4e5f';
const USER = '5a1e2d3c-4b5a-4678-9abc-def012345678';

interface KitDeps {
  received: Buffer[];
}
const defineOperation = operationsFor<KitDeps>();

/** Stripe's scheme: HMAC-SHA256 over "<timestamp>.<exact body bytes>". */
const stripeSignature = (timestamp: number, payload: Buffer) => createHmac('sha256', WEBHOOK_SECRET).update(`${timestamp}.`).update(payload).digest('hex');

const operations = [
  defineOperation({
    method: 'post',
    path: '/kit/projects/:projectId/notes',
    summary: 'Add a note',
    tag: 'notes',
    auth: 'token',
    params: z.object({ projectId: z.uuid() }),
    query: z.object({ draft: z.enum(['yes', 'no']).optional() }),
    body: z.object({ text: z.string().min(1).max(100) }),
    responses: { 201: { description: 'created', schema: z.object({ text: z.string(), tenantId: z.string().nullable() }) } },
    async handler({ body, principal }) {
      return { status: 201, body: { text: body.text, tenantId: principal!.tenantId } };
    },
  }),
  defineOperation({
    method: 'post',
    path: '/kit/webhooks/stripe',
    summary: 'A Stripe event',
    tag: 'webhooks',
    auth: 'none',
    body: 'raw',
    rawContentType: 'application/json',
    bodyLimit: '1kb',
    responses: { 200: { description: 'accepted' }, 400: { description: 'bad signature' } },
    async handler({ req, body, deps }) {
      const [, timestamp, signature] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(req.get('stripe-signature') ?? '') ?? [];
      const expected = timestamp ? Buffer.from(stripeSignature(Number(timestamp), body), 'hex') : Buffer.alloc(0);
      if (!signature || !timingSafeEqual(Buffer.from(signature, 'hex'), expected.length === 32 ? expected : Buffer.alloc(32))) {
        return { status: 400, body: { error: { code: 'bad_request', message: 'signature mismatch' } } };
      }
      deps.received.push(body);
      return { body: { received: true, bytes: body.length } };
    },
  }),
];

const keys = KeyRing.generate();
const issuer = new TokenIssuer({ keys, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 300 });
let jwksServer: Server;
/** What the JWKS endpoint publishes: the ring's keys, until a test rotates them. */
let published = keys.jwks();
let jwksUrl = '';
let verifier: TokenVerifier;
const deps: KitDeps = { received: [] };
const app = express();

beforeAll(async () => {
  // The auth service's JWKS, over HTTP, as a service fetches it: public keys only.
  jwksServer = createServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify(published)));
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', () => resolve()));
  const { port } = jwksServer.address() as AddressInfo;
  jwksUrl = `http://127.0.0.1:${port}/auth/.well-known/jwks.json`;
  verifier = await TokenVerifier.fromUrl(jwksUrl, { issuer: ISSUER, audience: AUDIENCE });
  mountOperations(app, operations, { deps, logger: pino({ level: 'silent' }), verify: (token) => verifier.verify(token) });
  app.use(notFoundHandler);
  app.use(errorHandler(pino({ level: 'silent' })));
});
afterAll(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));

const memberToken = () => issuer.sign({ userId: USER, tenant: { id: TENANT, role: 'member' } });
const notePath = `/kit/projects/${TENANT}/notes`;

describe('operations and OpenAPI', () => {
  test('one definition gives the route, its parameters, bodies, security and the error answers', () => {
    const document = buildOpenApiDocument(operations, { title: 'kit', version: '1', description: 'test' }) as {
      paths: Record<string, Record<string, { parameters?: { name: string; in: string; required: boolean }[]; requestBody?: { content: Record<string, unknown> }; responses: Record<string, unknown>; security?: unknown }>>;
    };
    const note = document.paths['/kit/projects/{projectId}/notes']!.post!;
    expect(note.parameters).toEqual([
      expect.objectContaining({ name: 'projectId', in: 'path', required: true }),
      expect.objectContaining({ name: 'draft', in: 'query', required: false }),
    ]);
    expect(Object.keys(note.requestBody!.content)).toEqual(['application/json']);
    expect(Object.keys(note.responses).sort()).toEqual(['201', '401', '422']);
    expect(note.security).toEqual([{ bearer: [] }]);
    const webhook = document.paths['/kit/webhooks/stripe']!.post!;
    expect(webhook.requestBody!.content).toEqual({ 'application/json': { schema: { type: 'string', format: 'binary' } } });
    expect(webhook.responses['422']).toBeUndefined();
  });
});

describe('parsing errors answer the catalog codes', () => {
  const expectCatalog = (response: request.Response, code: keyof typeof ERRORS) => {
    expect([response.status, response.body.error?.code]).toEqual([ERRORS[code][0], code]);
  };

  test('a body, query or path parameter that does not match its schema is 422 validation_failed', async () => {
    const token = memberToken();
    expectCatalog(await request(app).post(notePath).auth(token, { type: 'bearer' }).send({ text: '' }), 'validation_failed');
    expectCatalog(await request(app).post(`${notePath}?draft=maybe`).auth(token, { type: 'bearer' }).send({ text: 'hi' }), 'validation_failed');
    expectCatalog(await request(app).post('/kit/projects/not-a-uuid/notes').auth(token, { type: 'bearer' }).send({ text: 'hi' }), 'validation_failed');
    const created = await request(app).post(notePath).auth(token, { type: 'bearer' }).send({ text: 'hi' });
    expect([created.status, created.body]).toEqual([201, { text: 'hi', tenantId: TENANT }]);
  });

  test('unreadable JSON is 400 bad_request, an oversized body 413 payload_too_large, an unknown route 404 not_found', async () => {
    const token = memberToken();
    expectCatalog(await request(app).post(notePath).auth(token, { type: 'bearer' }).set('content-type', 'application/json').send('{"text":'), 'bad_request');
    expectCatalog(await request(app).post(notePath).auth(token, { type: 'bearer' }).send({ text: 'x'.repeat(70_000) }), 'payload_too_large');
    expectCatalog(await request(app).get('/kit/nothing'), 'not_found');
  });
});

describe('bearer tokens against the JWKS', () => {
  test('a token the auth service signed is verified with the published public keys alone', () => {
    const token = memberToken();
    expect(verifier.verify(token)).toMatchObject({ userId: USER, tenantId: TENANT, role: 'member', readOnly: false });
    expect(JSON.stringify(keys.jwks())).not.toMatch(/"(d|p|q|dp|dq|qi)":/);
  });

  test('refuses a token signed by another key, even under a trusted kid', async () => {
    const stranger = KeyRing.generate();
    const foreign = new TokenIssuer({ keys: stranger, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 300 }).sign({ userId: USER, tenant: { id: TENANT, role: 'owner' } });
    expect(verifier.verify(foreign)).toBeNull();
    const underTrustedKid = jwt.sign({ 'https://hasura.io/jwt/claims': { 'x-hasura-user-id': USER, 'x-hasura-tenant-id': TENANT, 'x-hasura-default-role': 'owner', 'x-hasura-allowed-roles': ['owner'] } }, exportPrivatePem(stranger.current), {
      algorithm: 'RS256', keyid: keys.current.kid, subject: USER, issuer: ISSUER, audience: AUDIENCE, expiresIn: 300,
    });
    expect(verifier.verify(underTrustedKid)).toBeNull();
    const response = await request(app).post(notePath).auth(underTrustedKid, { type: 'bearer' }).send({ text: 'hi' });
    expect([response.status, response.body.error.code]).toEqual([401, 'unauthenticated']);
  });

  test('refuses an expired token, another audience or issuer, and HS256 keyed with the public key', () => {
    const anHourAgo = Math.floor(Date.now() / 1000) - 3600;
    expect(verifier.verify(issuer.sign({ userId: USER, tenant: { id: TENANT, role: 'member' } }, anHourAgo))).toBeNull();
    expect(verifier.verify(new TokenIssuer({ keys, issuer: ISSUER, audience: 'someone-else', ttlSeconds: 300 }).sign({ userId: USER, tenant: null }))).toBeNull();
    expect(verifier.verify(new TokenIssuer({ keys, issuer: 'https://evil.test', audience: AUDIENCE, ttlSeconds: 300 }).sign({ userId: USER, tenant: null }))).toBeNull();
    const publicPem = keys.current.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const confused = jwt.sign({ 'https://hasura.io/jwt/claims': { 'x-hasura-user-id': USER, 'x-hasura-default-role': 'anonymous', 'x-hasura-allowed-roles': ['anonymous'] } }, publicPem, {
      algorithm: 'HS256', keyid: keys.current.kid, subject: USER, issuer: ISSUER, audience: AUDIENCE, expiresIn: 300,
    });
    expect(verifier.verify(confused)).toBeNull();
  });
});

test('after a key rotation a refreshed verifier takes the new key and drops the retired one', async () => {
  const rotated = new KeyRing([KeyRing.generate().current]);
  const own = await TokenVerifier.fromUrl(jwksUrl, { issuer: ISSUER, audience: AUDIENCE });
  const oldToken = memberToken();
  const newToken = new TokenIssuer({ keys: rotated, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 300 }).sign({ userId: USER, tenant: { id: TENANT, role: 'member' } });
  expect([own.verify(oldToken) !== null, own.verify(newToken)]).toEqual([true, null]);
  published = rotated.jwks();
  const stop = own.keepFresh(jwksUrl, 50);
  try {
    await expect.poll(() => own.verify(newToken), { timeout: 3_000 }).not.toBeNull();
    expect(own.verify(oldToken)).toBeNull();
  } finally {
    stop();
    published = keys.jwks();
  }
});

describe('raw-body routes', () => {
  test('the handler gets the exact bytes, so a webhook signature over them verifies', async () => {
    // Whitespace and key order a JSON round trip would lose: the signature covers these bytes.
    const payload = Buffer.from('{ "type":"invoice.paid",  "data": {"id":"in_1"} }\n');
    const timestamp = Math.floor(Date.now() / 1000);
    const server = createServiceServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    try {
      const { port } = server.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/kit/webhooks/stripe`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'stripe-signature': `t=${timestamp},v1=${stripeSignature(timestamp, payload)}` },
        body: payload,
      });
      expect([response.status, await response.json()]).toEqual([200, { received: true, bytes: payload.length }]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    expect(deps.received.at(-1)!.equals(payload)).toBe(true);
    const reserialised = Buffer.from(JSON.stringify(JSON.parse(payload.toString())));
    expect(stripeSignature(timestamp, reserialised)).not.toBe(stripeSignature(timestamp, payload));
  });

  test('a forged signature is refused; a body over the route limit is 413; another media type 400', async () => {
    const payload = Buffer.from('{"type":"invoice.paid"}');
    const forged = await request(app).post('/kit/webhooks/stripe').set('content-type', 'application/json').set('stripe-signature', `t=1,v1=${'0'.repeat(64)}`).send(payload);
    expect(forged.status).toBe(400);
    const large = await request(app).post('/kit/webhooks/stripe').set('content-type', 'application/json').send(Buffer.alloc(2048, 0x20));
    expect([large.status, large.body.error.code]).toEqual([413, 'payload_too_large']);
    const wrongType = await request(app).post('/kit/webhooks/stripe').set('content-type', 'text/plain').send('hello');
    expect([wrongType.status, wrongType.body.error.code]).toEqual([400, 'bad_request']);
  });
});

/** Sends one GET with `count` headers of `size` bytes each; the status, or the socket error. */
async function statusWithHeaders(server: Server, count: number, size: number): Promise<number> {
  const { port } = server.address() as AddressInfo;
  const headers: Record<string, string> = {};
  for (let index = 0; index < count; index += 1) headers[`x-filler-${index}`] = 'a'.repeat(size);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: '127.0.0.1', port, path: '/kit/nothing', headers }, (response) => {
      response.resume();
      resolve(response.statusCode!);
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

describe('header limit', () => {
  test('services read the headers nginx lets through (4 lines of 15 KiB), where plain Node answers 431', async () => {
    expect(SERVICE_MAX_HEADER_BYTES).toBeGreaterThanOrEqual(70_000);
    const kit = createServiceServer(app);
    const plain = createServer(app);
    await Promise.all([kit, plain].map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))));
    try {
      expect(await statusWithHeaders(plain, 4, 15 * 1024)).toBe(431);
      expect(await statusWithHeaders(kit, 4, 15 * 1024)).toBe(404);
    } finally {
      await Promise.all([kit, plain].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    }
  });
});
