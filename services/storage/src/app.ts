import type { Express } from 'express';
import { buildServiceApp, serviceOperations } from '../../shared/src/http/service-app.js';
import type { StorageDependencies } from './deps.js';
import { OPERATIONS } from './routes/index.js';

const { operations, document } = serviceOperations<StorageDependencies>('storage', OPERATIONS, {
  title: 'Tenantry storage service',
  version: '1.0.0',
  description:
    "Files of the token's tenant in S3: uploads through presigned POST policies that fix the key, type, size and SHA-256, counted against the storage limit from the moment they are requested; downloads through short presigned GETs; and credentials that S3 and Redis themselves confine to the tenant.",
});

export function buildStorageApp(deps: StorageDependencies): Express {
  return buildServiceApp(operations, deps, { verify: (token) => deps.verifier.verify(token) });
}

export { operations as STORAGE_OPERATIONS, document as STORAGE_OPENAPI_DOCUMENT };
