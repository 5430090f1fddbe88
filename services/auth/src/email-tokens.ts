import type { Pool, PoolClient } from 'pg';
import type { AuthDependencies } from './deps.js';
import { mailedLink, MAILED_PATHS, verificationMail, type MailContent } from '../../shared/src/mail/templates.js';
import { hashToken, newOpaqueToken } from '../../shared/src/secrets.js';

export type EmailTokenPurpose = 'verify_email' | 'password_reset';

const LIFETIME_SECONDS: Record<EmailTokenPurpose, number> = { verify_email: 48 * 3600, password_reset: 3600 };

/** A single-use, expiring token for a mailed link; only its hash is stored. */
export async function createEmailToken(db: Pool | PoolClient, userId: string, purpose: EmailTokenPurpose): Promise<string> {
  const token = newOpaqueToken();
  await db.query(
    `INSERT INTO auth_email_tokens (user_id, purpose, token_hash, expires_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4))`,
    [userId, purpose, hashToken(token), LIFETIME_SECONDS[purpose]],
  );
  return token;
}

/** Spends a token: the user it was for, or null when it is unknown, used, expired or for another purpose. */
export async function consumeEmailToken(db: Pool | PoolClient, token: string, purpose: EmailTokenPurpose): Promise<string | null> {
  const { rows } = await db.query<{ user_id: string }>(
    `UPDATE auth_email_tokens SET used_at = now()
     WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
     RETURNING user_id`,
    [hashToken(token), purpose],
  );
  return rows[0]?.user_id ?? null;
}

export const link = (deps: AuthDependencies, path: string, token: string): string => mailedLink(deps.publicUrl, path, token);

/** Mail failures are logged, never surfaced: the caller's request already did its work. */
export async function sendMail(deps: AuthDependencies, to: string, content: MailContent): Promise<void> {
  try {
    await deps.mailer.send({ to, ...content });
  } catch (error) {
    deps.logger.error({ err: error, subject: content.subject }, 'mail could not be sent');
  }
}

export async function sendVerificationMail(deps: AuthDependencies, db: Pool | PoolClient, userId: string, email: string): Promise<void> {
  const token = await createEmailToken(db, userId, 'verify_email');
  await sendMail(deps, email, verificationMail(link(deps, MAILED_PATHS.verifyEmail, token)));
}
