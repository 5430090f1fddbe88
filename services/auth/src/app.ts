import type { Express } from 'express';
import { buildServiceApp, serviceOperations } from '../../shared/src/http/service-app.js';
import type { AuthDependencies } from './deps.js';
import { OPERATIONS } from './routes/index.js';

const { operations, document } = serviceOperations<AuthDependencies>('auth', OPERATIONS, {
  title: 'Tenantry auth service',
  version: '1.0.0',
  description: 'Accounts, sessions, tenant-scoped access tokens, members, invitations and API keys.',
});

export function buildAuthApp(deps: AuthDependencies): Express {
  // The login throttle's source address is the client's, from the edge's X-Forwarded-For.
  return buildServiceApp(operations, deps, { verify: (token) => deps.tokens.verify(token), trustProxy: deps.trustProxy });
}

export { operations as AUTH_OPERATIONS, document as AUTH_OPENAPI_DOCUMENT };
