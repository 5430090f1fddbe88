/**
 * The end-to-end operations, typed by the documents @graphql-codegen generated from the
 * live Hasura (./__generated__/graphql.ts). Imported only by the Docker-gated suite after
 * codegen, and type-checked against that schema with tests/e2e/tsconfig.json.
 */
import http from 'node:http';
import { print } from 'graphql';
import { ClientError, GraphQLClient } from 'graphql-request';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import {
  DeleteProjectDocument,
  InsertProjectDocument,
  InsertProjectIntoTenantDocument,
  PlanFeaturesDocument,
  ProjectByIdDocument,
  ProjectsDocument,
  ProjectsLiveDocument,
  PublicPlansDocument,
  RenameProjectDocument,
  SubscriptionDocument,
  TenantBrandingDocument,
  TenantSettingsDocument,
  type ProjectsLiveSubscription,
} from './__generated__/graphql.js';

import type { Caller, FlowsContract } from './contract.js';

/** fetch over node:http, because fetch() may not set Host and the subdomain is the point. */
function hostFetch(host: string | undefined): typeof fetch {
  return (input, init) =>
    new Promise((resolve, reject) => {
      const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
      const headers = Object.fromEntries(new Headers(init?.headers).entries());
      if (host) headers.host = host;
      const request = http.request(url, { method: init?.method ?? 'GET', headers }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const responseHeaders = new Headers();
          for (const [name, value] of Object.entries(response.headers)) if (typeof value === 'string') responseHeaders.set(name, value);
          resolve(new Response(Buffer.concat(chunks), { status: response.statusCode ?? 500, headers: responseHeaders }));
        });
      });
      request.on('error', reject);
      request.end(typeof init?.body === 'string' ? init.body : undefined);
    });
}

function headersOf(caller: Caller): Record<string, string> {
  return {
    ...(caller.token ? { authorization: `Bearer ${caller.token}` } : {}),
    ...(caller.tenantSlug ? { 'x-tenant-slug': caller.tenantSlug } : {}),
  };
}

export function graphql(edgeUrl: string, caller: Caller): GraphQLClient {
  return new GraphQLClient(`${edgeUrl}/v1/graphql`, { headers: headersOf(caller), fetch: hostFetch(caller.host) });
}

/** The GraphQL error a refused operation answers with: HTTP status and the first error's message and code. */
export async function refusal(operation: Promise<unknown>): Promise<{ status: number; message: string; code: string | undefined }> {
  try {
    await operation;
  } catch (error) {
    if (!(error instanceof ClientError)) throw error;
    const first = error.response.errors?.[0] as { message: string; extensions?: { code?: string } } | undefined;
    return { status: error.response.status, message: first?.message ?? '', code: first?.extensions?.code };
  }
  throw new Error('the operation was expected to be refused, and succeeded');
}

export const operations = (edgeUrl: string, caller: Caller) => {
  const client = graphql(edgeUrl, caller);
  return {
    projects: async () => (await client.request(ProjectsDocument)).projects,
    project: async (id: string) => (await client.request(ProjectByIdDocument, { id })).projects_by_pk,
    insert: async (name: string) => (await client.request(InsertProjectDocument, { name, description: 'e2e' })).insert_projects_one,
    insertInto: (tenantId: string, name: string) => client.request(InsertProjectIntoTenantDocument, { tenantId, name }),
    rename: async (id: string, name: string) => (await client.request(RenameProjectDocument, { id, name })).update_projects,
    remove: async (id: string) => (await client.request(DeleteProjectDocument, { id })).delete_projects?.affected_rows ?? null,
    plans: async () => (await client.request(PublicPlansDocument)).plans,
    branding: async () => (await client.request(TenantBrandingDocument)).tenants,
    settings: () => client.request(TenantSettingsDocument),
    features: async () => (await client.request(PlanFeaturesDocument)).tenants,
    subscription: async () => (await client.request(SubscriptionDocument)).tenant_subscriptions,
  };
};

type LiveProjects = ProjectsLiveSubscription['projects'];

/** A live subscription over graphql-ws through the edge; every result is kept. */
export function subscribeProjects(edgeUrl: string, caller: Caller) {
  const results: LiveProjects[] = [];
  const errors: unknown[] = [];
  const headers = headersOf(caller);
  class EdgeSocket extends WebSocket {
    constructor(address: string | URL, protocols?: string | string[]) {
      // The upgrade request carries the token too, so the edge cross-checks it with the host.
      super(address, protocols, { headers: { ...headers, ...(caller.host ? { host: caller.host } : {}) } });
    }
  }
  const client = createClient({
    url: `${edgeUrl.replace(/^http/, 'ws')}/v1/graphql`,
    webSocketImpl: EdgeSocket,
    connectionParams: { headers },
    retryAttempts: 0,
  });
  const stop = client.subscribe<ProjectsLiveSubscription>(
    { query: print(ProjectsLiveDocument) },
    {
      next: (value) => {
        if (value.data) results.push(value.data.projects);
        if (value.errors) errors.push(value.errors);
      },
      error: (error) => errors.push(error),
      complete: () => undefined,
    },
  );
  return {
    results,
    errors,
    async close() {
      stop();
      await client.dispose();
    },
  };
}

export default { operations, refusal, subscribeProjects } satisfies FlowsContract;
