import express, { type Express, type Request, type RequestHandler, type Response } from 'express';
import type { z } from 'zod';
import type { Principal } from '../auth/verifier.js';
import { fail } from '../errors/catalog.js';
import type { Logger } from '../logger.js';
import { bearerToken, parse } from './parse.js';

type Infer<T> = T extends z.ZodType ? z.infer<T> : T extends 'raw' ? Buffer : undefined;

/** A body schema, or 'raw': the exact bytes as a Buffer (a webhook whose signature covers them). */
export type BodySpec = z.ZodType | 'raw' | undefined;

export interface Context<D, B, Q, P> {
  req: Request;
  res: Response;
  deps: D;
  log: Logger;
  body: B;
  query: Q;
  params: P;
  /** The verified bearer token, when one was sent (required when auth is 'token'). */
  principal: Principal | null;
}

export interface Reply {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
}

/**
 * One operation: its route, its schemas and its handler side by side. The same schemas
 * validate requests and generate the OpenAPI document (buildOpenApiDocument).
 */
export interface OperationSpec<D, B extends BodySpec, Q extends z.ZodType | undefined, P extends z.ZodType | undefined> {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** Express path under the service root, e.g. /auth/members/:userId */
  path: string;
  summary: string;
  tag: string;
  /** 'token': a valid access token is required; 'optional': used when sent; 'none': ignored. */
  auth: 'none' | 'token' | 'optional';
  body?: B;
  /** The largest body read (express's size syntax, e.g. '64kb', '1mb'); larger is 413. Default 64kb. */
  bodyLimit?: string;
  /** The media type a raw body must have (default: any). */
  rawContentType?: string;
  query?: Q;
  params?: P;
  responses: Record<number, ResponseSpec>;
  handler: (context: Context<D, Infer<B>, Infer<Q>, Infer<P>>) => Promise<Reply>;
}

export type Operation<D> = OperationSpec<D, BodySpec, z.ZodType | undefined, z.ZodType | undefined>;

/** Builds the typed `defineOperation` of a service whose handlers receive `D`. */
export function operationsFor<D>() {
  return function defineOperation<B extends BodySpec = undefined, Q extends z.ZodType | undefined = undefined, P extends z.ZodType | undefined = undefined>(
    spec: OperationSpec<D, B, Q, P>,
  ): Operation<D> {
    return spec as unknown as Operation<D>;
  };
}

export const DEFAULT_BODY_LIMIT = '64kb';

export interface MountOptions<D> {
  deps: D;
  logger: Logger;
  /** Verifies bearer tokens (a TokenVerifier, or the auth service's issuer); null when invalid. */
  verify: (token: string) => Principal | null;
}

function bodyReader(operation: Operation<unknown>): RequestHandler {
  const limit = operation.bodyLimit ?? DEFAULT_BODY_LIMIT;
  if (operation.body === 'raw') return express.raw({ type: operation.rawContentType ?? (() => true), limit });
  return express.json({ limit });
}

/**
 * Mounts every operation on `app`: the bearer token verified before anything else, the body
 * read (JSON, or raw bytes for `body: 'raw'`) within its limit, body, query and params parsed
 * with their schemas (422 `validation_failed`), then the handler. Errors go to the app's
 * error handler (errorHandler), in the catalog's shape.
 */
export function mountOperations<D>(app: Express, operations: readonly Operation<D>[], { deps, logger, verify }: MountOptions<D>): void {
  for (const operation of operations) {
    const authenticate: RequestHandler = (req, _res, next) => {
      const token = bearerToken(req);
      const principal = token && operation.auth !== 'none' ? verify(token) : null;
      if (operation.auth === 'token' && !principal) throw fail('unauthenticated');
      if (operation.auth === 'optional' && token && !principal) throw fail('unauthenticated');
      // One rule for every route, before its body is read: a read-only token (impersonation,
      // read-only API key) changes nothing, even on a route that forgot its own check.
      if (principal?.readOnly && operation.method !== 'get') throw fail('forbidden', 'read-only tokens change nothing');
      requestState(req).principal = principal;
      next();
    };
    const handle = async (req: Request, response: Response) => {
      const log = logger.child({ requestId: req.get('x-request-id'), route: operation.path });
      let body: unknown;
      if (operation.body === 'raw') {
        // express.raw leaves the body unset (or {}) when the media type did not match.
        if (!Buffer.isBuffer(req.body)) throw fail('bad_request', `the body must be ${operation.rawContentType ?? 'present'}`);
        body = req.body;
      } else {
        body = parse(operation.body, req.body);
      }
      const query = parse(operation.query, req.query);
      const params = parse(operation.params, req.params);
      const principal = requestState(req).principal ?? null;
      const reply = await operation.handler({ req, res: response, deps, log, body, query, params, principal } as never);
      if (reply.headers) response.set(reply.headers);
      response.status(reply.status ?? 200);
      if (reply.body === undefined) response.end();
      else response.json(reply.body);
    };
    app[operation.method](operation.path, authenticate, bodyReader(operation as Operation<unknown>), handle);
  }
}

/** Per-request state the stages hand on. */
const requestState = (req: Request) => req as Request & { principal?: Principal | null };
