import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** An opaque, high-entropy token (refresh tokens, mailed links): 256 random bits. */
export const newOpaqueToken = (): string => randomBytes(32).toString('base64url');

/**
 * High-entropy secrets are stored as SHA-256: a slow hash adds nothing when guessing is
 * hopeless, and the lookup by hash stays one index probe.
 */
export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
