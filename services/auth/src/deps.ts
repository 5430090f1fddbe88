import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import type { Logger } from '../../shared/src/logger.js';
import type { KeyRing } from './keys.js';
import type { Mailer } from '../../shared/src/mail/mailer.js';
import type { PasswordHasher } from '../../shared/src/passwords.js';
import type { LoginLimiter } from './rate-limit.js';
import type { TokenIssuer } from './tokens.js';

/** Everything the app is built from; main.ts makes them from the config, tests make their own. */
export interface AuthDependencies {
  pool: Pool;
  redis: Redis;
  logger: Logger;
  keys: KeyRing;
  tokens: TokenIssuer;
  passwords: PasswordHasher;
  mailer: Mailer;
  limiter: LoginLimiter;
  refreshTtlSeconds: number;
  /** Base of mailed links, e.g. https://app.example.com */
  publicUrl: string;
  /** Express "trust proxy": which hops may set X-Forwarded-For (the edge). Default: loopback, uniquelocal. */
  trustProxy?: string;
}
