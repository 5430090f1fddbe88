/** The small pieces of the shared kit every service and the CLI take from one place. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { loadStackEnv } from '../../services/shared/src/config.js';
import { isUuid, quoteIdent } from '../../services/shared/src/ids.js';
import { invitationMail, mailedLink, MAILED_PATHS, passwordResetMail, verificationMail } from '../../services/shared/src/mail/templates.js';
import { hashToken, newOpaqueToken, sameSecret } from '../../services/shared/src/secrets.js';
import { tenantBucket, tenantRedisPrefix } from '../../services/shared/src/tenancy.js';

const PROBE = 'TENANTRY_KIT_PROBE';
afterEach(() => {
  delete process.env[PROBE];
  delete process.env.TENANTRY_KIT_EXPLICIT;
});

test('the .stack/env loader loads the stack file, unless the environment names its own target', () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'kit-env-')), 'env');
  writeFileSync(file, `${PROBE}=from-stack\n`);
  process.env.TENANTRY_KIT_EXPLICIT = 'postgres://explicit';
  expect(loadStackEnv(['TENANTRY_KIT_EXPLICIT'], file)).toBe(false);
  expect(process.env[PROBE]).toBeUndefined();
  delete process.env.TENANTRY_KIT_EXPLICIT;
  expect(loadStackEnv(['TENANTRY_KIT_EXPLICIT'], path.join(path.dirname(file), 'missing'))).toBe(false);
  expect(loadStackEnv(['TENANTRY_KIT_EXPLICIT'], file)).toBe(true);
  expect(process.env[PROBE]).toBe('from-stack');
});

test('UUIDs, quoted identifiers and secrets', () => {
  expect(isUuid('0B6F1A52-7F6E-4C55-9D0E-0A1B2C3D4E5F')).toBe(true);
  for (const notOne of ['', 'acme', '0b6f1a52-7f6e-4c55-9d0e-0a1b2c3d4e5', '0b6f1a52-7f6e-4c55-9d0e-0a1b2c3d4e5f\n', "' OR 1=1 --"]) expect(isUuid(notOne), notOne).toBe(false);
  expect(quoteIdent('tenant_members')).toBe('"tenant_members"');
  expect(quoteIdent('x"; DROP TABLE users; --')).toBe('"x""; DROP TABLE users; --"');
  const secret = newOpaqueToken();
  expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(hashToken(secret)).toMatch(/^[0-9a-f]{64}$/);
  expect(sameSecret(secret, secret)).toBe(true);
  expect(sameSecret(undefined, secret)).toBe(false);
  expect(sameSecret(`${secret}x`, secret)).toBe(false);
  expect(sameSecret(secret.replace(/.$/, (last) => (last === 'a' ? 'b' : 'a')), secret)).toBe(false);
});

test("a tenant's resource names", () => {
  const id = '0b6f1a52-7f6e-4c55-9d0e-0a1b2c3d4e5f';
  expect(tenantBucket(id)).toBe(`tenant-${id}`);
  // The braces are the Cluster hash tag: every key of the tenant hashes on the id alone.
  expect(tenantRedisPrefix(id)).toBe(`tenant:{${id}}:`);
});

test('mailed links and templates', () => {
  const link = mailedLink('https://app.example.test/base', MAILED_PATHS.acceptInvitation, 'tok/en+=');
  expect(link).toBe('https://app.example.test/base/invitations/accept?token=tok%2Fen%2B%3D');
  expect(invitationMail('Acme', link)).toEqual({ subject: 'You are invited to Acme', text: expect.stringContaining(link) });
  expect(verificationMail(link).text).toContain(link);
  expect(passwordResetMail(link).subject).toBe('Reset your password');
});
