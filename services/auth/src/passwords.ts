import argon2 from 'argon2';

export interface Argon2Parameters {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

/**
 * argon2id with OWASP's minimum recommended cost by default: memoryCost 19456 KiB (19 MiB),
 * timeCost 2, parallelism 1 (OWASP Password Storage Cheat Sheet). Memory-hardness is what
 * defeats GPU cracking; 19 MiB × 2 passes is ~20-40 ms per hash on a server core, so a
 * login stays well under 100 ms while each guess costs an attacker the same memory. The
 * tests lower it through AUTH_ARGON2_* only; the production default never changes.
 */
export class PasswordHasher {
  private dummy: Promise<string> | undefined;

  constructor(private readonly parameters: Argon2Parameters) {}

  hash(password: string): Promise<string> {
    return argon2.hash(password, { type: argon2.argon2id, ...this.parameters });
  }

  async verify(hash: string | null, password: string): Promise<boolean> {
    if (hash === null) {
      // Unknown email or no password: do the same work, so timing tells nothing.
      this.dummy ??= this.hash('not-a-real-password-only-for-timing');
      await argon2.verify(await this.dummy, password).catch(() => false);
      return false;
    }
    try {
      return await argon2.verify(hash, password);
    } catch {
      return false;
    }
  }
}
