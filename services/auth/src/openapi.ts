import { z } from 'zod';
import type { Operation } from './http.js';

const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

/** Express `:param` → OpenAPI `{param}`. */
export const openApiPath = (path: string): string => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' });

/** The OpenAPI 3.1 document, generated from the same zod schemas that validate the requests. */
export function buildOpenApiDocument(operations: readonly Operation[], serverUrl = '/'): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const operation of operations) {
    const parameters: unknown[] = [];
    for (const [location, schema] of [
      ['path', operation.params],
      ['query', operation.query],
    ] as const) {
      if (!schema) continue;
      const shape = (jsonSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] }) ?? {};
      for (const [name, property] of Object.entries(shape.properties ?? {})) {
        parameters.push({ name, in: location, required: location === 'path' || (shape.required ?? []).includes(name), schema: property });
      }
    }
    const responses: Record<string, unknown> = {};
    for (const [status, spec] of Object.entries(operation.responses)) {
      responses[status] = spec.schema ? { description: spec.description, content: { 'application/json': { schema: jsonSchema(spec.schema, 'output') } } } : { description: spec.description };
    }
    if (operation.body) responses['422'] ??= { description: 'the body does not match the schema', content: { 'application/json': { schema: jsonSchema(errorSchema, 'output') } } };
    if (operation.auth === 'token') responses['401'] ??= { description: 'no valid access token', content: { 'application/json': { schema: jsonSchema(errorSchema, 'output') } } };
    const entry: Record<string, unknown> = {
      operationId: `${operation.method}${openApiPath(operation.path).replace(/[^A-Za-z0-9]+(.)?/g, (_, next: string | undefined) => (next ?? '').toUpperCase())}`,
      summary: operation.summary,
      tags: [operation.tag],
      responses,
    };
    if (parameters.length) entry.parameters = parameters;
    if (operation.body) entry.requestBody = { required: true, content: { 'application/json': { schema: jsonSchema(operation.body, 'input') } } };
    if (operation.auth === 'token') entry.security = [{ bearer: [] }];
    if (operation.auth === 'optional') entry.security = [{ bearer: [] }, {}];
    (paths[openApiPath(operation.path)] ??= {})[operation.method] = entry;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Tenantry auth service', version: '1.0.0', description: 'Accounts, sessions, tenant-scoped access tokens, members, invitations and API keys.' },
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: { Error: jsonSchema(errorSchema, 'output') },
    },
    paths,
  };
}
