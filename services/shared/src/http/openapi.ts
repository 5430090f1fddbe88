import { z } from 'zod';
import type { Operation } from './operation.js';

const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

/** Express `:param` → OpenAPI `{param}`. */
export const openApiPath = (path: string): string => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' });

export interface ApiInfo {
  title: string;
  version: string;
  description: string;
}

function requestBodyOf(operation: Operation<never>): Record<string, unknown> | undefined {
  if (operation.body === undefined) return undefined;
  if (operation.body === 'raw') {
    return { required: true, content: { [operation.rawContentType ?? 'application/octet-stream']: { schema: { type: 'string', format: 'binary' } } } };
  }
  return { required: true, content: { 'application/json': { schema: jsonSchema(operation.body, 'input') } } };
}

/** The OpenAPI 3.1 document of a service, generated from the same zod schemas that validate its requests. */
export function buildOpenApiDocument<D>(operations: readonly Operation<D>[], info: ApiInfo, serverUrl = '/'): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const operation of operations as readonly Operation<never>[]) {
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
    const errorContent = { 'application/json': { schema: jsonSchema(errorSchema, 'output') } };
    const responses: Record<string, unknown> = {};
    for (const [status, spec] of Object.entries(operation.responses)) {
      responses[status] = spec.schema ? { description: spec.description, content: { 'application/json': { schema: jsonSchema(spec.schema, 'output') } } } : { description: spec.description };
    }
    if (operation.body && operation.body !== 'raw') responses['422'] ??= { description: 'the body does not match the schema', content: errorContent };
    if (operation.auth === 'token') responses['401'] ??= { description: 'no valid access token', content: errorContent };
    const entry: Record<string, unknown> = {
      operationId: `${operation.method}${openApiPath(operation.path).replace(/[^A-Za-z0-9]+(.)?/g, (_, next: string | undefined) => (next ?? '').toUpperCase())}`,
      summary: operation.summary,
      tags: [operation.tag],
      responses,
    };
    if (parameters.length) entry.parameters = parameters;
    const requestBody = requestBodyOf(operation);
    if (requestBody) entry.requestBody = requestBody;
    if (operation.auth === 'token') entry.security = [{ bearer: [] }];
    if (operation.auth === 'optional') entry.security = [{ bearer: [] }, {}];
    (paths[openApiPath(operation.path)] ??= {})[operation.method] = entry;
  }
  return {
    openapi: '3.1.0',
    info,
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: { Error: jsonSchema(errorSchema, 'output') },
    },
    paths,
  };
}
