import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import getPort from 'get-port';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildAuthApp } from '../../services/auth/src/app.js';
import { listen, PASSWORD, startHarness, uniqueEmail, uniqueSlug, type Harness } from '../auth/harness.js';

interface Listed {
  to: string;
  subject: string;
  links: string[];
}

const repositoryRoot = path.resolve(import.meta.dirname, '../..');

/**
 * The native stack's wiring, on free ports: the auth service mails the mail catcher over SMTP,
 * with PUBLIC_URL set to the catcher's page, whose link pages post back to the auth service.
 */
describe('the native stack mail catcher', () => {
  let harness: Harness;
  let auth: { server: Server; base: string };
  let catcher: ChildProcess;
  let catcherBase: string;
  let mailDir: string;
  const transports: nodemailer.Transporter[] = [];

  beforeAll(async () => {
    harness = await startHarness();
    const [smtpPort, httpPort] = [await getPort(), await getPort()];
    catcherBase = `http://127.0.0.1:${httpPort}`;
    mailDir = await mkdtemp(path.join(os.tmpdir(), 'mail-catcher-'));
    const transport = nodemailer.createTransport(`smtp://127.0.0.1:${smtpPort}`);
    transports.push(transport);
    const app = buildAuthApp({
      ...harness.deps,
      publicUrl: catcherBase,
      mailer: { send: async (mail) => void (await transport.sendMail({ from: 'Tenantry <no-reply@tenantry.test>', ...mail })), close: () => transport.close() },
    });
    auth = await listen(app);
    catcher = spawn(process.execPath, ['--import', 'tsx', path.join(repositoryRoot, 'scripts/native/mail-catcher.ts')], {
      env: { PATH: process.env.PATH, MAIL_CATCHER_SMTP_PORT: String(smtpPort), MAIL_CATCHER_HTTP_PORT: String(httpPort), MAIL_CATCHER_DIR: mailDir, AUTH_URL: auth.base },
      stdio: 'ignore',
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const healthy = await fetch(`${catcherBase}/healthz`).then((response) => response.ok, () => false);
      if (healthy) break;
      if (Date.now() > deadline) throw new Error('the mail catcher did not start');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });

  afterAll(async () => {
    catcher?.kill('SIGINT');
    transports.forEach((transport) => transport.close());
    await new Promise((resolve) => auth?.server.close(resolve));
    await harness?.close();
    await rm(mailDir, { recursive: true, force: true });
  });

  async function linkFor(email: string, subject: RegExp): Promise<string> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const messages = (await (await fetch(`${catcherBase}/messages.json`)).json()) as Listed[];
      const found = messages.find((message) => message.to.includes(email) && subject.test(message.subject));
      if (found) return found.links[0]!;
      if (Date.now() > deadline) throw new Error(`no mail to ${email} matching ${subject}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  test('lists caught messages newest first with their links decoded, on the page and as JSON', async () => {
    const email = uniqueEmail('listed');
    // A link longer than a mail line: quoted-printable breaks it and writes = as =3D on the wire.
    const longLink = `${catcherBase}/invitations/accept?token=${'Ab-_9'.repeat(30)}&tenant=${uniqueSlug('x')}`;
    await transports[0]!.sendMail({ from: 'a@tenantry.test', to: email, subject: 'First <b>', text: `Open:\n\n${longLink}\n\nThanks.` });
    await transports[0]!.sendMail({ from: 'a@tenantry.test', to: email, subject: 'Second', text: 'no link here' });

    const listed = ((await (await fetch(`${catcherBase}/messages.json`)).json()) as Listed[]).filter((message) => message.to.includes(email));
    expect(listed.map((message) => [message.subject, message.links])).toEqual([
      ['Second', []],
      ['First <b>', [longLink]],
    ]);
    const page = await fetch(`${catcherBase}/`);
    expect(page.headers.get('content-type')).toContain('text/html');
    const html = await page.text();
    expect(html).toContain(`href="${longLink.replace(/&/g, '&amp;')}"`);
    expect(html).toContain('First &lt;b&gt;');
    expect(html).not.toContain('=3D');
  });

  test('clicking the mailed verification link verifies the address; the link works once', async () => {
    const email = uniqueEmail('verify-link');
    const signup = await fetch(`${auth.base}/auth/signup`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD }),
    });
    expect(signup.status).toBe(201);
    const link = await linkFor(email, /Verify/);
    expect(link.startsWith(`${catcherBase}/verify-email?token=`)).toBe(true);

    // curl (Accept: */*) gets the outcome as a line; a browser gets the page.
    const clicked = await fetch(link);
    expect(clicked.status).toBe(200);
    expect(await clicked.text()).toBe('Your email address is verified.\n');
    const { rows } = await harness.admin.query<{ verified: boolean }>('SELECT email_verified_at IS NOT NULL AS verified FROM users WHERE email = $1', [email]);
    expect(rows[0]!.verified).toBe(true);

    const again = await fetch(link, { headers: { Accept: 'text/html,application/xhtml+xml' } });
    expect(again.status).toBe(400);
    expect(again.headers.get('content-type')).toContain('text/html');
    expect(await again.text()).toMatch(/Refused \(400 [a-z_]+\)/);
  });

  test('the password-reset link opens a form whose new password logs in; a short one is refused by the policy', async () => {
    const email = uniqueEmail('reset-link');
    const json = { 'Content-Type': 'application/json' };
    expect((await fetch(`${auth.base}/auth/signup`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: PASSWORD }) })).status).toBe(201);
    expect((await fetch(`${auth.base}/auth/password-reset`, { method: 'POST', headers: json, body: JSON.stringify({ email }) })).status).toBe(202);
    const link = await linkFor(email, /Reset/);
    const form = await fetch(link);
    expect(await form.text()).toMatch(/<form method="post">.*name="password"/s);
    const token = new URL(link).searchParams.get('token')!;
    const post = (password: string) =>
      fetch(`${catcherBase}/password-reset`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token, password }) });
    const short = await post('x');
    expect(short.status).toBe(400);
    expect(await short.text()).toContain('validation_failed');
    // The form posts to the link itself: the token comes in the query.
    const changed = await fetch(link, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ password: 'a brand new passphrase' }),
    });
    expect(changed.status, await changed.clone().text()).toBe(200);
    const login = await fetch(`${auth.base}/auth/login`, { method: 'POST', headers: json, body: JSON.stringify({ email, password: 'a brand new passphrase' }) });
    expect(login.status).toBe(200);
  });

  test('the invitation link opens a form: a new account joins the tenant with a password of its own', async () => {
    const json = { 'Content-Type': 'application/json' };
    const slug = uniqueSlug('invite-link');
    const owner = await fetch(`${auth.base}/auth/signup`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email: uniqueEmail('invite-owner'), password: PASSWORD, tenant: { slug, name: 'Invite Link' } }),
    });
    expect(owner.status).toBe(201);
    const { accessToken } = (await owner.json()) as { accessToken: string };
    const invitee = uniqueEmail('invitee');
    const invited = await fetch(`${auth.base}/auth/invitations`, {
      method: 'POST',
      headers: { ...json, Authorization: `Bearer ${accessToken}` },
      body: JSON.stringify({ email: invitee, role: 'member' }),
    });
    expect(invited.status).toBe(201);
    const link = await linkFor(invitee, /invited/);
    expect(link.startsWith(`${catcherBase}/invitations/accept?token=`)).toBe(true);
    expect(await (await fetch(link)).text()).toContain('name="displayName"');
    const accepted = await fetch(`${catcherBase}/invitations/accept`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: new URL(link).searchParams.get('token')!, password: 'invitee passphrase', displayName: 'Jo' }),
    });
    expect(await accepted.text()).toContain(`You joined ${slug}.`);
    const login = await fetch(`${auth.base}/auth/login`, { method: 'POST', headers: json, body: JSON.stringify({ email: invitee, password: 'invitee passphrase', tenant: slug }) });
    expect(((await login.json()) as { tenant: { slug: string; role: string } }).tenant).toMatchObject({ slug, role: 'member' });
  });
});
