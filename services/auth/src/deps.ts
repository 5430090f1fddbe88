import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import type { Logger } from '../../shared/src/logger.js';
import type { KeyRing } from './keys.js';
import type { Mailer } from '../../shared/src/mail/mailer.js';
import type { NamespaceStores } from '../../shared/src/storage/namespace.js';
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
  /**
   * Where a signed-up tenant's bucket and Redis ACL user are made. main.ts always sets it (the
   * S3 settings are required); an app built without it (a test of something else) leaves
   * them to the storage service's keeper.
   */
  namespaces?: NamespaceStores;
  /** Express "trust proxy": which hops may set X-Forwarded-For (the edge). Default: loopback, uniquelocal. */
  trustProxy?: string;
}
