import { z } from 'zod';
import { consumeEmailToken, createEmailToken, link, sendMail, sendVerificationMail } from '../email-tokens.js';
import { emailSchema } from '../../../shared/src/email.js';
import { fail } from '../../../shared/src/errors/catalog.js';
import { passwordSchema } from '../../../shared/src/passwords.js';
import { defineOperation } from '../http.js';
import { revokeAllSessions } from '../sessions.js';
import { inTransaction } from '../../../shared/src/db/transaction.js';
import { MAILED_PATHS, passwordResetMail } from '../../../shared/src/mail/templates.js';

const tokenBody = z.object({ token: z.string().min(1).max(200) });

export const verifyEmail = defineOperation({
  method: 'post',
  path: '/auth/verify-email',
  summary: 'Confirm an email address with the token from the mailed link (single use, 48 hours)',
  tag: 'email',
  auth: 'none',
  body: tokenBody,
  responses: { 200: { description: 'verified' }, 400: { description: 'the link is invalid, used or expired' } },
  async handler({ deps, body }) {
    const userId = await consumeEmailToken(deps.pool, body.token, 'verify_email');
    if (!userId) throw fail('invalid_link');
    await deps.pool.query('UPDATE users SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1', [userId]);
    return { body: { verified: true } };
  },
});

export const resendVerification = defineOperation({
  method: 'post',
  path: '/auth/verify-email/resend',
  summary: "Mail a new verification link to the caller's address (no-op when already verified)",
  tag: 'email',
  auth: 'token',
  responses: { 202: { description: 'sent if needed' } },
  async handler({ deps, principal }) {
    if (principal!.apiKeyId || principal!.actor) throw fail('forbidden');
    const { rows } = await deps.pool.query<{ email: string; email_verified_at: Date | null }>('SELECT email, email_verified_at FROM users WHERE id = $1', [principal!.userId]);
    if (rows[0] && !rows[0].email_verified_at) await sendVerificationMail(deps, deps.pool, principal!.userId, rows[0].email);
    return { status: 202, body: { sent: true } };
  },
});

export const requestPasswordReset = defineOperation({
  method: 'post',
  path: '/auth/password-reset',
  summary: 'Mail a password-reset link (single use, 1 hour); always 202, whether or not the email exists',
  tag: 'email',
  auth: 'none',
  body: z.object({ email: emailSchema }),
  responses: { 202: { description: 'accepted (says nothing about the email)' } },
  async handler({ deps, body }) {
    const { rows } = await deps.pool.query<{ id: string; email: string }>('SELECT id, email FROM users WHERE lower(email COLLATE "und-x-icu") = $1 AND disabled_at IS NULL', [body.email]);
    const user = rows[0];
    if (user) {
      const token = await createEmailToken(deps.pool, user.id, 'password_reset');
      // Not awaited: the answer takes the same time whether or not a mail goes out.
      void sendMail(deps, user.email, passwordResetMail(link(deps, MAILED_PATHS.passwordReset, token)));
    }
    return { status: 202, body: { accepted: true } };
  },
});

export const confirmPasswordReset = defineOperation({
  method: 'post',
  path: '/auth/password-reset/confirm',
  summary: 'Set a new password with the token from the mailed link; every session of the user is revoked',
  tag: 'email',
  auth: 'none',
  body: z.object({ token: z.string().min(1).max(200), password: passwordSchema }),
  responses: { 200: { description: 'password changed' }, 400: { description: 'the link is invalid, used or expired' } },
  async handler({ deps, body }) {
    const passwordHash = await deps.passwords.hash(body.password);
    await inTransaction(deps.pool, {}, async (client) => {
      const userId = await consumeEmailToken(client, body.token, 'password_reset');
      if (!userId) throw fail('invalid_link');
      // The mailbox was reached: the address is verified too.
      await client.query('UPDATE users SET password_hash = $2, email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1', [userId, passwordHash]);
      await client.query("UPDATE auth_email_tokens SET used_at = now() WHERE user_id = $1 AND purpose = 'password_reset' AND used_at IS NULL", [userId]);
      await revokeAllSessions(client, userId, 'password_reset');
    });
    return { body: { reset: true } };
  },
});
