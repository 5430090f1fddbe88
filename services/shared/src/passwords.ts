import argon2 from 'argon2';
import { z } from 'zod';

/**
 * The one password policy: every service route that sets a password and the CLI's
 * `user create` parse with this. Long enough to matter, short enough that argon2's input
 * stays bounded.
 */
export const PASSWORD_MIN_LENGTH = 10;
export const PASSWORD_MAX_LENGTH = 256;
export const passwordSchema = z
  .string()
  .min(PASSWORD_MIN_LENGTH, `must be at least ${PASSWORD_MIN_LENGTH} characters`)
  .max(PASSWORD_MAX_LENGTH, `must be at most ${PASSWORD_MAX_LENGTH} characters`);

export interface Argon2Parameters {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

/**
 * argon2id with OWASP's minimum recommended cost: memoryCost 19456 KiB (19 MiB), timeCost 2,
 * parallelism 1 (OWASP Password Storage Cheat Sheet). Memory-hardness is what defeats GPU
 * cracking; 19 MiB × 2 passes is ~20-40 ms per hash on a server core, so a login stays well
 * under 100 ms while each guess costs an attacker the same memory.
 */
export const ARGON2_DEFAULTS: Readonly<Argon2Parameters> = Object.freeze({ memoryCost: 19456, timeCost: 2, parallelism: 1 });

/**
 * The AUTH_ARGON2_* variables, read the same way by the auth service and the CLI, so a hash
 * the CLI writes costs what the service's own do. Tests lower them; production keeps the defaults.
 */
export const argon2EnvironmentSchema = z.object({
  AUTH_ARGON2_MEMORY_KIB: z.coerce.number().int().min(1024).default(ARGON2_DEFAULTS.memoryCost),
  AUTH_ARGON2_TIME_COST: z.coerce.number().int().min(1).default(ARGON2_DEFAULTS.timeCost),
  AUTH_ARGON2_PARALLELISM: z.coerce.number().int().min(1).default(ARGON2_DEFAULTS.parallelism),
});

export function argon2Parameters(environment: z.infer<typeof argon2EnvironmentSchema>): Argon2Parameters {
  return {
    memoryCost: environment.AUTH_ARGON2_MEMORY_KIB,
    timeCost: environment.AUTH_ARGON2_TIME_COST,
    parallelism: environment.AUTH_ARGON2_PARALLELISM,
  };
}

export class PasswordHasher {
  private dummy: Promise<string> | undefined;

  constructor(private readonly parameters: Argon2Parameters = ARGON2_DEFAULTS) {}

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
