import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';

/** What the echo upstream saw: the request it received, as JSON. */
export interface Echo {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * The edge's upstream in the tests and in `bench:edge`: answers every request with the
 * request it received (body in base64), and every WebSocket upgrade with 101 and the tenant
 * the edge named, so a test can see exactly what the edge passed on.
 */
export function startEchoServer(): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const echo: Echo = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('base64') };
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Upstream': 'echo' });
      res.end(JSON.stringify(echo));
    });
  });
  server.on('upgrade', (req, socket) => {
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Seen-Tenant: ${req.headers['x-hasura-tenant-id'] ?? ''}\r\n\r\n`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}
