import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { send, startEdgeHarness, type Echo, type EdgeHarness } from './harness.js';

/**
 * The login throttle keys on the client's address, which the auth service reads from
 * X-Forwarded-For (believed only from the edge's hops). A client that could choose that
 * header would get a fresh address, and fresh limits, per guess: the edge must replace it.
 */
let harness: EdgeHarness;
beforeAll(async () => {
  harness = await startEdgeHarness();
});
afterAll(() => harness?.stop());

describe('X-Forwarded-For reaching the auth service', () => {
  test('ATTACK: a client-sent X-Forwarded-For (one or several) is replaced by the address the edge saw', async () => {
    for (const spoofed of ['203.0.113.7', '203.0.113.7, 198.51.100.9', '10.0.0.1']) {
      const response = await send(harness.edge.url, '/auth/login', {
        method: 'POST',
        headers: { 'X-Forwarded-For': spoofed, 'X-Real-IP': '203.0.113.8', 'Content-Type': 'application/json' },
        body: '{}',
      });
      expect(response.status, response.text).toBe(200);
      const seen = (response.json as Echo).headers;
      expect(seen['x-forwarded-for'], spoofed).toBe('127.0.0.1');
    }
  });
});
