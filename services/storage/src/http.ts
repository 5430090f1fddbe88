import type { Context as KitContext, Operation as KitOperation } from '../../shared/src/http/operation.js';
import { operationsFor } from '../../shared/src/http/operation.js';
import type { StorageDependencies } from './deps.js';

// Operations, parsing and the OpenAPI builder are the shared kit's (services/shared/src/http); these bind them to the storage service.
export type Context<B, Q, P> = KitContext<StorageDependencies, B, Q, P>;
export type Operation = KitOperation<StorageDependencies>;
export const defineOperation = operationsFor<StorageDependencies>();
