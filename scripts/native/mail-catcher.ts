// A development mail catcher for the native stack: accepts every message on SMTP and
// keeps it as an .eml file, so a person trying the stack can follow verification and
// invitation links. Not for production (no TLS, no auth).
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import { z } from 'zod';
import { loadConfigOrExit } from '../../services/shared/src/config.js';

const config = loadConfigOrExit(
  z.object({
    MAIL_CATCHER_SMTP_PORT: z.coerce.number().int().min(1).max(65535),
    MAIL_CATCHER_HTTP_PORT: z.coerce.number().int().min(1).max(65535),
    MAIL_CATCHER_DIR: z.string().min(1),
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

// /healthz for the stack's readiness check; / lists what arrived.
createServer((req, res) => {
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify(req.url === '/healthz' ? { status: 'ok' } : { received, directory: config.MAIL_CATCHER_DIR }));
}).listen(config.MAIL_CATCHER_HTTP_PORT, '127.0.0.1');
