// The mail catcher's web side: the list of caught messages with their links decoded, and the
// pages those links open. On the native stack PUBLIC_URL points here, so a mailed link
// (verify-email, password-reset, invitations/accept) opens a page that does what a front end
// would: clicking a verification link verifies; the other two ask for what they need and post
// it to the auth service. Development only: no TLS, no CSRF token, loopback only.
import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { MAILED_PATHS } from '../../services/shared/src/mail/templates.js';

export interface CaughtMessage {
  file: string;
  date: string;
  to: string;
  subject: string;
  text: string;
  /** Every http(s) URL in the text part, decoded (no quoted-printable soft breaks, no =3D). */
  links: string[];
}

const LINK = /https?:\/\/[^\s<>"')]+/g;

/** The caught messages, newest first, decoded by mailparser. */
export async function readMessages(directory: string): Promise<CaughtMessage[]> {
  const names = (await readdir(directory).catch(() => [] as string[])).filter((name) => name.endsWith('.eml'));
  const messages = await Promise.all(
    names.map(async (file) => {
      const parsed = await simpleParser(await readFile(path.join(directory, file)));
      const text = parsed.text ?? '';
      const to = [parsed.to].flat().map((address) => address?.text ?? '').join(', ');
      return { file, date: (parsed.date ?? new Date(0)).toISOString(), to, subject: parsed.subject ?? '', text, links: text.match(LINK) ?? [] };
    }),
  );
  // File names start with the arrival time in ms and a counter: their order is arrival order.
  const arrival = (file: string) => file.split('-').slice(0, 2).map(Number);
  return messages.sort((a, b) => {
    const [aTime, aCount] = arrival(a.file);
    const [bTime, bCount] = arrival(b.file);
    return bTime! - aTime! || bCount! - aCount!;
  });
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (character) => HTML_ESCAPES[character]!);
const unescapeHtml = (text: string): string =>
  text.replace(/&(?:amp|lt|gt|quot|#39);/g, (entity) => Object.entries(HTML_ESCAPES).find(([, escaped]) => escaped === entity)![0]);

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left;vertical-align:top}
code,a{word-break:break-all}label{display:block;margin:.5rem 0}input{font:inherit;padding:.2rem}</style></head>
<body><h1>${escapeHtml(title)}</h1>${body}<p><a href="/">all caught mail</a></p></body></html>`;
}

export function messageListPage(messages: CaughtMessage[], directory: string): string {
  const rows = messages
    .map(
      (message) => `<tr><td>${escapeHtml(message.date)}</td><td>${escapeHtml(message.to)}</td><td>${escapeHtml(message.subject)}</td>
<td>${message.links.map((link) => `<a href="${escapeHtml(link)}">${escapeHtml(link)}</a>`).join('<br>')}</td></tr>`,
    )
    .join('\n');
  return page(
    'Caught mail',
    messages.length === 0
      ? `<p>No mail yet. Files land in <code>${escapeHtml(directory)}</code>; <a href="/messages.json">JSON</a>.</p>`
      : `<p>${messages.length} message(s), newest first, from <code>${escapeHtml(directory)}</code>; <a href="/messages.json">JSON</a>.</p>
<table><tr><th>received</th><th>to</th><th>subject</th><th>links</th></tr>${rows}</table>`,
  );
}

interface AuthAnswer {
  status: number;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
}

async function callAuth(authUrl: string, route: string, body: unknown, token?: string): Promise<AuthAnswer> {
  const response = await fetch(new URL(route, authUrl), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as AuthAnswer['body']) : {} };
}

const outcome = (answer: AuthAnswer, success: string): string =>
  answer.status < 300
    ? `<p><strong>${escapeHtml(success)}</strong></p>`
    : `<p><strong>Refused (${answer.status} ${escapeHtml(answer.body.error?.code ?? '')}):</strong> ${escapeHtml(answer.body.error?.message ?? '')}</p>`;

async function formFields(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 16_384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const hiddenToken = (token: string) => `<input type="hidden" name="token" value="${escapeHtml(token)}">`;

/** The pages a mailed link opens; answers false for a path that is not one of them. */
export async function handleLinkPage(req: IncomingMessage, res: ServerResponse, authUrl: string): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'http://mail-catcher');
  const send = (status: number, title: string, body: string) => {
    res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(page(title, body));
  };
  // A browser gets the page; curl (Accept: */*) gets the outcome as one line of text.
  const sendOutcome = (status: number, title: string, body: string) => {
    if ((req.headers.accept ?? '').includes('text/html')) return send(status, title, body);
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`${unescapeHtml(body.replace(/<[^>]+>/g, ''))}\n`);
  };
  const linkPath = url.pathname.replace(/^\/+/, '');
  if (!(Object.values(MAILED_PATHS) as string[]).includes(linkPath)) return false;
  // A form posts to the link itself, so the token may come in the query or the form.
  const fields = new URLSearchParams([...url.searchParams, ...(req.method === 'POST' ? await formFields(req) : [])]);
  const token = fields.get('token') ?? '';
  if (!token) {
    sendOutcome(400, 'Link without a token', '<p>This link has no <code>token</code>: open the whole link from the mail.</p>');
    return true;
  }

  if (linkPath === MAILED_PATHS.verifyEmail) {
    const answer = await callAuth(authUrl, '/auth/verify-email', { token });
    sendOutcome(answer.status < 300 ? 200 : 400, 'Verify your email address', outcome(answer, 'Your email address is verified.'));
    return true;
  }

  if (linkPath === MAILED_PATHS.passwordReset) {
    if (req.method !== 'POST') {
      send(200, 'Reset your password', `<form method="post">${hiddenToken(token)}
<label>New password (at least 10 characters) <input type="password" name="password" required minlength="10" maxlength="256"></label>
<button>Set the password</button></form>`);
      return true;
    }
    const answer = await callAuth(authUrl, '/auth/password-reset/confirm', { token, password: fields.get('password') ?? '' });
    sendOutcome(answer.status < 300 ? 200 : 400, 'Reset your password', outcome(answer, 'Your password is changed; every session was logged out.'));
    return true;
  }

  if (req.method !== 'POST') {
    send(200, 'Accept the invitation', `<form method="post">${hiddenToken(token)}
<p>New here? Choose a password (and a name). Have an account already? Give its email and password.</p>
<label>Email (only for an existing account) <input type="email" name="email"></label>
<label>Password <input type="password" name="password" required maxlength="256"></label>
<label>Display name (new accounts) <input name="displayName" maxlength="200"></label>
<button>Accept</button></form>`);
    return true;
  }
  const email = fields.get('email')?.trim();
  const password = fields.get('password') ?? '';
  let answer: AuthAnswer;
  if (email) {
    const login = await callAuth(authUrl, '/auth/login', { email, password });
    const accessToken = typeof login.body.accessToken === 'string' ? login.body.accessToken : undefined;
    answer = accessToken ? await callAuth(authUrl, '/auth/invitations/accept', { token }, accessToken) : login;
  } else {
    const displayName = fields.get('displayName')?.trim();
    answer = await callAuth(authUrl, '/auth/invitations/accept', { token, password, ...(displayName ? { displayName } : {}) });
  }
  const tenant = (answer.body.tenant as { slug?: string } | undefined)?.slug;
  sendOutcome(answer.status < 300 ? 200 : 400, 'Accept the invitation', outcome(answer, `You joined ${tenant ?? 'the tenant'}.`));
  return true;
}
