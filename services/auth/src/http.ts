import type { Request, Response } from 'express';
import { z } from 'zod';
import { normaliseEmail } from '../../shared/src/email.js';
import type { Logger } from '../../shared/src/logger.js';
import type { AuthDependencies } from './deps.js';
import { fail } from './errors.js';
import type { Principal } from './tokens.js';

type Infer<T> = T extends z.ZodType ? z.infer<T> : undefined;

export interface Context<B, Q, P> {
  req: Request;
  res: Response;
  deps: AuthDependencies;
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
 * validate requests and generate the OpenAPI document.
 */
export interface OperationSpec<B extends z.ZodType | undefined, Q extends z.ZodType | undefined, P extends z.ZodType | undefined> {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** Express path under the service root, e.g. /auth/members/:userId */
  path: string;
  summary: string;
  tag: string;
  /** 'token': a valid access token is required; 'optional': used when sent; 'none': ignored. */
  auth: 'none' | 'token' | 'optional';
  body?: B;
  query?: Q;
  params?: P;
  responses: Record<number, ResponseSpec>;
  handler: (context: Context<Infer<B>, Infer<Q>, Infer<P>>) => Promise<Reply>;
}

export type Operation = OperationSpec<z.ZodType | undefined, z.ZodType | undefined, z.ZodType | undefined>;

export function defineOperation<
  B extends z.ZodType | undefined = undefined,
  Q extends z.ZodType | undefined = undefined,
  P extends z.ZodType | undefined = undefined,
>(spec: OperationSpec<B, Q, P>): Operation {
  return spec as unknown as Operation;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => (issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}

export function parse<T extends z.ZodType>(schema: T | undefined, value: unknown): z.infer<T> | undefined {
  if (!schema) return undefined;
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) throw fail('validation_failed', describeIssues(parsed.error));
  return parsed.data;
}

export function bearerToken(req: Request): string | null {
  const header = req.get('authorization');
  if (!header) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match ? match[1]! : null;
}

// Shared schema pieces.
/**
 * An address in, its stored spelling out (services/shared/src/email.ts): every route
 * compares and stores the same form the database's unique index and CHECK expect.
 */
export const emailSchema = z
  .string()
  .trim()
  .max(320)
  .regex(/^[^@\s]+@[^@\s]+\.[^@\s]+$/, 'must be an email address')
  .transform((address, context) => {
    const email = normaliseEmail(address);
    if (email !== null) return email;
    context.addIssue({ code: 'custom', input: address, message: 'must be an email address with a valid domain name' });
    return z.NEVER;
  });
/** Long enough to matter, short enough that argon2 input stays bounded. */
export const passwordSchema = z.string().min(10, 'must be at least 10 characters').max(256);
export const uuidSchema = z.uuid();
