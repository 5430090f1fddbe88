import type { Request } from 'express';
import type { z } from 'zod';
import { fail } from '../errors/catalog.js';

/** A zod error in one line: the first few issues, each with its path. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => (issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}

/** Parses a request part with its schema; a mismatch is 422 `validation_failed`. No schema: undefined. */
export function parse<T extends z.ZodType>(schema: T | undefined, value: unknown): z.infer<T> | undefined {
  if (!schema) return undefined;
  const parsed = schema.safeParse(value ?? {});
  if (!parsed.success) throw fail('validation_failed', describeIssues(parsed.error));
  return parsed.data;
}

/** The bearer token of the Authorization header; null when there is none or it is not a bearer one. */
export function bearerToken(req: Request): string | null {
  const header = req.get('authorization');
  if (!header) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match ? match[1]! : null;
}
