import type { Express } from 'express';
import { buildServiceApp, serviceOperations } from '../../shared/src/http/service-app.js';
import type { BillingDependencies } from './deps.js';
import { OPERATIONS } from './routes/index.js';

const { operations, document } = serviceOperations<BillingDependencies>('billing', OPERATIONS, {
  title: 'Tenantry billing service',
  version: '1.0.0',
  description: "Stripe Checkout and Customer Portal for the token's tenant, its subscription and entitlements, and the Stripe webhook inbox.",
});

export function buildBillingApp(deps: BillingDependencies): Express {
  return buildServiceApp(operations, deps, { verify: (token) => deps.verifier.verify(token) });
}

export { operations as BILLING_OPERATIONS, document as BILLING_OPENAPI_DOCUMENT };
