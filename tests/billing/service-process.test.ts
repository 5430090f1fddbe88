import type { Server } from 'node:http';
import getPort from 'get-port';
import { describe, expect, test } from 'vitest';
import { KeyRing, generateSigningKey } from '../../services/auth/src/keys.js';
import { TokenIssuer } from '../../services/auth/src/tokens.js';
import { poolAs, services } from '../helpers/database.js';
import { runToExit, serveJwks, startServiceProcess, until } from '../helpers/service-process.js';
import { AUDIENCE, ISSUER, seedBillingTenant, STRIPE_SECRET_KEY, stripeEvent, stripeSignature, testStripe, WEBHOOK_SECRET } from './harness.js';


describe('the billing process', () => {
  test('serves webhooks before auth answers, verifies tokens once the keys are in (and a rotated key at once), and stops on SIGTERM', async () => {
    const [port, jwksPort] = await Promise.all([getPort(), getPort()]);
    let keys = KeyRing.generate();
    const admin = poolAs('platform_admin', 2);
    const tenant = await seedBillingTenant(admin, 'process');
    const service = startServiceProcess('services/billing/src/main.ts', {
        ...process.env,
        DATABASE_URL: services().urls.app_service,
        REDIS_URL: services().endpoints.redisUrl,
        BILLING_PORT: String(port),
        BILLING_WORKER: 'false',
        // Its first pass would sample users.count for every tenant of the shared database.
        BILLING_USAGE_WORKER: 'false',
        STRIPE_SECRET_KEY,
        STRIPE_API_BASE: services().endpoints.stripeApiBase,
        STRIPE_WEBHOOK_SECRETS: `${WEBHOOK_SECRET}, whsec_other_secret`,
        BASE_DOMAIN: 'tenantry.test',
        AUTH_JWKS_URL: `http://127.0.0.1:${jwksPort}/auth/.well-known/jwks.json`,
        AUTH_ISSUER: ISSUER,
        AUTH_AUDIENCE: AUDIENCE,
        SMTP_URL: 'smtp://127.0.0.1:1',
        LOG_LEVEL: 'warn',
    });
    const output = service.output;
    let jwks: Server | undefined;
    try {
      const base = `http://127.0.0.1:${port}`;
      await until(async () => ((await fetch(`${base}/healthz`)).status === 200 ? true : undefined), 'healthz 200', output);

      // Auth is not up: Stripe is still served.
      const event = stripeEvent('customer.updated', { id: 'cus_processTest', object: 'customer' });
      const payload = JSON.stringify(event);
      const delivered = await fetch(`${base}/billing/webhooks/stripe`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Stripe-Signature': stripeSignature(testStripe(), payload) },
        body: payload,
      });
      expect(delivered.status, output()).toBe(200);
      expect(await delivered.json()).toEqual({ received: true, duplicate: false });

      const subscription = (token: string) => fetch(`${base}/billing/subscription`, { headers: { Authorization: `Bearer ${token}` } });
      const signed = () => new TokenIssuer({ keys, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 900 }).sign({ userId: tenant.users.owner, tenant: { id: tenant.tenantId, role: 'owner' } });
      expect((await subscription(signed())).status).toBe(401);

      jwks = await serveJwks(jwksPort, () => keys);
      const answer = await until(async () => {
        const response = await subscription(signed());
        return response.status === 200 ? ((await response.json()) as { plan: string }) : undefined;
      }, 'a token verified once auth answers', output);
      expect(answer.plan).toBe('free');

      // A rotation: auth publishes and signs with a new key; the first token of it makes the service read the keys again.
      keys = new KeyRing([generateSigningKey(), keys.current]);
      await until(async () => ((await subscription(signed())).status === 200 ? true : undefined), 'a token of the new key verified', output, 40);
    } finally {
      const code = await service.stop();
      jwks?.close();
      await admin.end();
      expect(code, output()).toBe(0);
    }
  });

  test('a bad environment exits 1 with every problem named, and no secret echoed', async () => {
    const { code, stderr } = await runToExit('services/billing/src/main.ts', {
      PATH: process.env.PATH,
      STRIPE_SECRET_KEY: 'pk_live_publishable',
      STRIPE_WEBHOOK_SECRETS: 'not-a-secret',
      BILLING_RETURN_URL: 'https://example.test/billing',
    });
    expect(code).toBe(1);
    for (const variable of ['DATABASE_URL', 'REDIS_URL', 'STRIPE_SECRET_KEY', 'STRIPE_WEBHOOK_SECRETS', 'BILLING_RETURN_URL', 'BASE_DOMAIN', 'AUTH_JWKS_URL', 'SMTP_URL']) {
      expect(stderr).toContain(variable);
    }
    expect(stderr).not.toContain('pk_live_publishable');
  });
});
