import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** An opaque, high-entropy token (refresh tokens, mailed links, invitations): 256 random bits. */
export const newOpaqueToken = (): string => randomBytes(32).toString('base64url');

/**
 * High-entropy secrets are stored as SHA-256: a slow hash adds nothing when guessing is
 * hopeless, and the lookup by hash stays one index probe.
 */
export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/**
 * Compares a secret someone sent with the expected one in constant time (for equal
 * lengths; the length itself is not a secret worth hiding for high-entropy values).
 * A missing value never matches.
 */
export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
