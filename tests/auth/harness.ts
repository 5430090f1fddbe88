import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { Redis } from 'ioredis';
import { simpleParser } from 'mailparser';
import type pg from 'pg';
import { pino } from 'pino';
import { SMTPServer } from 'smtp-server';
import request from 'supertest';
import { buildAuthApp } from '../../services/auth/src/app.js';
import type { AuthDependencies } from '../../services/auth/src/deps.js';
import { KeyRing } from '../../services/auth/src/keys.js';
import { smtpMailer } from '../../services/shared/src/mail/mailer.js';
import { PasswordHasher } from '../../services/shared/src/passwords.js';
import { createS3Client, type StorageSettings } from '../../services/shared/src/storage/location.js';
import { LoginLimiter, type LoginLimits } from '../../services/auth/src/rate-limit.js';
import { TokenIssuer } from '../../services/auth/src/tokens.js';
import { poolAs, services } from '../helpers/database.js';

export const ISSUER = 'https://auth.tenantry.test';
export const AUDIENCE = 'tenantry-test';
export const PUBLIC_URL = 'https://app.tenantry.test';

export interface ReceivedMail {
  to: string;
  subject: string;
  text: string;
}

/** A real SMTP server in this process; every message is parsed and kept. */
export class MailSink {
  readonly mails: ReceivedMail[] = [];
  private waiters: (() => void)[] = [];
  private server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData: (stream, _session, callback) => {
      simpleParser(stream)
        .then((parsed) => {
          const to = Array.isArray(parsed.to) ? parsed.to[0]?.text : parsed.to?.text;
          this.mails.push({ to: (to ?? '').toLowerCase(), subject: parsed.subject ?? '', text: parsed.text ?? '' });
          for (const wake of this.waiters.splice(0)) wake();
          callback();
        })
        .catch((error: Error) => callback(error));
    },
  });
  port = 0;

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.port = (this.server.server.address() as AddressInfo).port;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The newest mail to `to` whose subject matches, waiting for it to arrive. */
  async waitFor(to: string, subject: RegExp, timeoutMs = 5000): Promise<ReceivedMail> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = [...this.mails].reverse().find((mail) => mail.to.includes(to.toLowerCase()) && subject.test(mail.subject));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no mail to ${to} matching ${subject}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  /** The token of the first link in a mail. */
  static token(mail: ReceivedMail): string {
    const match = /https?:\/\/\S+/.exec(mail.text);
    if (!match) throw new Error('no link in mail');
    return new URL(match[0]).searchParams.get('token')!;
  }
}

export interface Harness {
  app: Express;
  deps: AuthDependencies;
  pool: pg.Pool;
  admin: pg.Pool;
  redis: Redis;
  mail: MailSink;
  close(): Promise<void>;
}

export const TEST_LIMITS: LoginLimits = { maxFailuresPerIp: 1000, windowSeconds: 60, lockoutSeconds: 60 };

/** The auth app wired to the shared test Postgres and Redis and a real SMTP sink. Cheap argon2: tests only. */
export async function startHarness(
  options: { keys?: KeyRing; ttlSeconds?: number; limits?: LoginLimits; storage?: StorageSettings } = {},
): Promise<Harness> {
  const pool = poolAs('app_service', 8);
  const admin = poolAs('platform_admin', 3);
  const redis = new Redis(services().endpoints.redisUrl, { maxRetriesPerRequest: 1 });
  const mail = new MailSink();
  await mail.start();
  const keys = options.keys ?? KeyRing.generate();
  const mailer = smtpMailer(`smtp://127.0.0.1:${mail.port}`, 'Tenantry <no-reply@tenantry.test>');
  const deps: AuthDependencies = {
    pool,
    redis,
    logger: pino({ level: 'silent' }),
    keys,
    tokens: new TokenIssuer({ keys, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: options.ttlSeconds ?? 900 }),
    passwords: new PasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 }),
    mailer,
    limiter: new LoginLimiter(redis, options.limits ?? TEST_LIMITS),
    refreshTtlSeconds: 3600,
    publicUrl: PUBLIC_URL,
    // As main.ts wires it: a signup with a tenant makes its bucket and Redis user.
    namespaces: {
      s3: createS3Client(services().endpoints.s3.endpoint, { ...services().endpoints.s3, region: 'us-east-1' }),
      redis,
      settings: options.storage ?? { layout: 'bucket', sharedBucket: 'tenantry-files' },
    },
  };
  const app = buildAuthApp(deps);
  return {
    app,
    deps,
    pool,
    admin,
    redis,
    mail,
    async close() {
      mailer.close();
      await mail.stop();
      await Promise.all([pool.end(), admin.end(), redis.quit()]);
    },
  };
}

/** The S3 settings auth's main.ts requires (it makes each signed-up tenant's bucket), for tests that start it as a process. */
export function authStorageEnv(): Record<string, string> {
  const { endpoint, accessKey, secretKey } = services().endpoints.s3;
  return { S3_ENDPOINT: endpoint, S3_ACCESS_KEY: accessKey, S3_SECRET_KEY: secretKey };
}

export const uniqueEmail = (label: string): string => `${label}-${randomBytes(5).toString('hex')}@example.test`;
export const uniqueSlug = (label: string): string => `${label}-${randomBytes(5).toString('hex')}`;
export const PASSWORD = 'correct horse battery staple';

export interface SignedUp {
  userId: string;
  email: string;
  accessToken: string;
  refreshToken: string;
  tenantId: string | null;
  slug: string | null;
}

/**
 * Moves a tenant to a plan, as platform_admin (as `tenantry plan set` would): a signed-up
 * tenant starts on free, whose plan has neither API keys nor custom domains.
 */
export async function setPlan(h: Pick<Harness, 'admin'>, tenantId: string | null, plan = 'starter'): Promise<void> {
  await h.admin.query('UPDATE tenants SET plan_id = $2 WHERE id = $1', [tenantId, plan]);
}

export function decode(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

/** Signs up through HTTP; with `tenant`, the user owns a new tenant. */
export async function signUp(app: Express, label: string, withTenant = true): Promise<SignedUp> {
  const email = uniqueEmail(label);
  const slug = withTenant ? uniqueSlug(label) : null;
  const response = await request(app)
    .post('/auth/signup')
    .send({ email, password: PASSWORD, ...(slug ? { tenant: { slug, name: `Tenant ${label}` } } : {}) })
    .expect(201);
  const body = response.body as { accessToken: string; refreshToken: string; tenant: { id: string } | null };
  return { userId: decode(body.accessToken).sub as string, email, accessToken: body.accessToken, refreshToken: body.refreshToken, tenantId: body.tenant?.id ?? null, slug };
}

export async function listen(app: Express): Promise<{ server: Server; base: string }> {
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** The one error shape, and no stack anywhere. */
export function expectError(body: unknown, code: string): void {
  const error = (body as { error?: { code?: unknown; message?: unknown } }).error;
  if (!error || error.code !== code || typeof error.message !== 'string') throw new Error(`expected error ${code}, got ${JSON.stringify(body)}`);
  if (JSON.stringify(body).includes('    at ')) throw new Error('a stack trace reached the client');
  if (Object.keys(body as object).length !== 1 || Object.keys(error).length !== 2) throw new Error(`unexpected error shape ${JSON.stringify(body)}`);
}
