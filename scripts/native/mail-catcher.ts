// A development mail catcher for the native stack: accepts every message on SMTP and
// keeps it as an .eml file; its web page lists them with their links decoded, and serves the
// pages those links open (mail-pages.ts). Not for production (no TLS, no auth).
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import { z } from 'zod';
import { loadConfigOrExit } from '../../services/shared/src/config.js';
import { handleLinkPage, messageListPage, readMessages } from './mail-pages.js';

const config = loadConfigOrExit(
  z.object({
    MAIL_CATCHER_SMTP_PORT: z.coerce.number().int().min(1).max(65535),
    MAIL_CATCHER_HTTP_PORT: z.coerce.number().int().min(1).max(65535),
    MAIL_CATCHER_DIR: z.string().min(1),
    /** Where the link pages post: the auth service itself, not through the edge. */
    AUTH_URL: z.string().url(),
  }),
);
mkdirSync(config.MAIL_CATCHER_DIR, { recursive: true });
let received = 0;

const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  onData(stream, session, done) {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      received += 1;
      const recipients = session.envelope.rcptTo.map((recipient) => recipient.address).join(',');
      const file = path.join(config.MAIL_CATCHER_DIR, `${Date.now()}-${received}-${recipients.replace(/[^a-z0-9@.,-]/gi, '_')}.eml`);
      writeFileSync(file, Buffer.concat(chunks));
      console.log(`mail for ${recipients}: ${file}`);
      done();
    });
  },
});
smtp.listen(config.MAIL_CATCHER_SMTP_PORT, '127.0.0.1');

// /healthz for the stack's readiness check; / lists what arrived (/messages.json the same as
// JSON); the link paths are the pages mailed links open.
createServer((req, res) => {
  const pathname = new URL(req.url ?? '/', 'http://mail-catcher').pathname;
  const answer = async () => {
    if (pathname === '/healthz') return json(200, { status: 'ok', received });
    if (await handleLinkPage(req, res, config.AUTH_URL)) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: { code: 'method_not_allowed', message: 'GET only' } });
    if (pathname === '/messages.json') return json(200, await readMessages(config.MAIL_CATCHER_DIR));
    if (pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      return res.end(messageListPage(await readMessages(config.MAIL_CATCHER_DIR), config.MAIL_CATCHER_DIR));
    }
    return json(404, { error: { code: 'not_found', message: `no page ${pathname}: see / for the caught mail` } });
  };
  const json = (status: number, body: unknown) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  answer().catch((error: Error) => {
    if (!res.headersSent) json(502, { error: { code: 'upstream_unavailable', message: `the mail catcher could not finish: ${error.message}` } });
    else res.end();
  });
}).listen(config.MAIL_CATCHER_HTTP_PORT, '127.0.0.1');
