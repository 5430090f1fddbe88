import jwt from 'jsonwebtoken';
import pRetry from 'p-retry';
import { fetchJwks, TokenVerifier, type Principal } from './verifier.js';
import type { Logger } from '../logger.js';

export interface AuthKeysOptions {
  jwksUrl: string;
  issuer: string;
  audience: string;
  logger: Logger;
  /** How often the JWKS is read again (a retired key stops verifying by then). Default 5 min. */
  refreshIntervalMs?: number;
  /** The least time between two reads caused by tokens of a key we do not know (tokens of made-up kids cost one small read per interval at most). Default 2 s. */
  unknownKidCooldownMs?: number;
}

/**
 * The auth service's public keys, kept current: read in the background until auth answers
 * (a service starts, and its health check answers, while auth starts — billing's webhook
 * inbox needs no token at all; token routes answer 401 until the keys are in), read again
 * periodically, and at once when a token names a key we do not know yet (a rotation), at
 * most once per cooldown.
 */
export class AuthKeys {
  private readonly verifier: TokenVerifier;
  private knownKids = new Set<string>();
  private lastRead = 0;
  private reading: Promise<void> | null = null;
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: AuthKeysOptions) {
    this.verifier = new TokenVerifier({ jwks: { keys: [] }, issuer: options.issuer, audience: options.audience });
  }

  /** Starts reading the keys (retrying until auth answers) and refreshing them; resolves once they are in. */
  start(): Promise<void> {
    const { logger, jwksUrl } = this.options;
    const loaded = pRetry(() => this.read(), {
      forever: true,
      minTimeout: 250,
      maxTimeout: 5_000,
      signal: this.abort.signal,
      onFailedAttempt: (error) => logger.warn({ err: error, attempt: error.attemptNumber, jwksUrl }, 'auth keys not readable yet; retrying'),
    }).then(() => logger.info({ kids: [...this.knownKids] }, 'auth keys loaded'));
    this.timer = setInterval(() => {
      this.read().catch((error: unknown) => logger.warn({ err: error }, 'auth keys refresh failed; keeping the keys we have'));
    }, this.options.refreshIntervalMs ?? 300_000);
    this.timer.unref();
    return loaded;
  }

  stop(): void {
    this.abort.abort();
    clearInterval(this.timer);
  }

  verify(token: string): Principal | null {
    const principal = this.verifier.verify(token);
    if (!principal) this.readIfUnknownKid(token);
    return principal;
  }

  private readIfUnknownKid(token: string): void {
    const decoded = jwt.decode(token, { complete: true });
    const kid = decoded?.header.kid;
    if (!kid || this.knownKids.has(kid)) return;
    if (Date.now() - this.lastRead < (this.options.unknownKidCooldownMs ?? 2_000)) return;
    this.read().catch((error: unknown) => this.options.logger.warn({ err: error }, 'auth keys read for an unknown key failed'));
  }

  private read(): Promise<void> {
    // One read at a time: a burst of tokens of a new key causes one fetch.
    this.reading ??= fetchJwks(this.options.jwksUrl)
      .then((jwks) => {
        this.verifier.setKeys(jwks);
        this.knownKids = new Set(jwks.keys.map((key) => key.kid));
      })
      .finally(() => {
        this.lastRead = Date.now();
        this.reading = null;
      });
    return this.reading;
  }
}
