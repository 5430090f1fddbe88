import type { Context as KitContext, Operation as KitOperation } from '../../shared/src/http/operation.js';
import { operationsFor } from '../../shared/src/http/operation.js';
import type { AuthDependencies } from './deps.js';

// Operations, parsing and the OpenAPI builder are the shared kit's (services/shared/src/http); these bind them to the auth service.
export type Context<B, Q, P> = KitContext<AuthDependencies, B, Q, P>;
export type Operation = KitOperation<AuthDependencies>;
export const defineOperation = operationsFor<AuthDependencies>();
