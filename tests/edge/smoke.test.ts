import { afterAll, beforeAll, expect, test } from 'vitest';
import { send, startEdgeHarness, type EdgeHarness } from './harness.js';

let harness: EdgeHarness;
beforeAll(async () => {
  harness = await startEdgeHarness();
});
afterAll(() => harness?.stop());

test('slug header', async () => {
  const tenant = await harness.createTenant();
  const response = await send(harness.edge.url, '/v1/graphql', { headers: { 'X-Tenant-Slug': tenant.slug, 'X-Hasura-Role': 'admin' } });
  console.log(response.status, response.text.slice(0, 500));
  expect(response.status).toBe(200);
});
