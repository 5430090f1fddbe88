import { setTimeout as sleep } from 'node:timers/promises';
import jwt from 'jsonwebtoken';
import type { Pool, PoolClient } from 'pg';
import { HASURA_NAMESPACE, TokenVerifier, type HasuraClaims, type Principal } from '../../shared/src/auth/verifier.js';
import { hasuraRoleFor } from '../../shared/src/roles.js';
import type { KeyRing } from './keys.js';
import type { Role } from '../../shared/src/permissions.js';

/** The role a token carries when it names no tenant: Hasura serves it public data only. */
export const NO_TENANT_ROLE = 'anonymous';

export interface TokenSubject {
  userId: string;
  /** null: a token for a user with no (active) tenant yet. */
  tenant: { id: string; role: Role } | null;
  apiKeyId?: string;
  /** The token carries the read-only twin of the role (`<hasura role>_readonly`): Hasura lets it select, never write. */
  readOnly?: boolean;
  actor?: string;
  /** Shorter than the default, e.g. for impersonation; never longer. */
  ttlSeconds?: number;
}

export interface TokenIssuerOptions {
  keys: KeyRing;
  issuer: string;
  audience: string;
  ttlSeconds: number;
}

/**
 * What a fresh token is signed for: the subject as the database says it is now, and the
 * member's tokens_valid_after (null when the token names no tenant).
 */
export interface FreshSubject {
  subject: TokenSubject;
  validAfter: Date | null;
}

/**
 * How many times signFresh reads: a state stamped in a later second than the service's own
 * clock after that means the database's clock runs ahead; the token is signed anyway and the
 * edge, which compares with the database's clock, has the last word.
 */
const FRESH_READ_ATTEMPTS = 3;
const floorSeconds = (milliseconds: number) => Math.floor(milliseconds / 1000);

/** A member's role and tokens_valid_after, read now; null when they are not a member of the tenant. */
export async function memberTokenState(db: Pool | PoolClient, tenantId: string, userId: string): Promise<{ role: Role; validAfter: Date } | null> {
  const { rows } = await db.query<{ role: Role; tokens_valid_after: Date }>({
    name: 'auth-member-token-state',
    text: 'SELECT role, tokens_valid_after FROM app.member_token_state($1, $2)',
    values: [tenantId, userId],
  });
  return rows[0] ? { role: rows[0].role, validAfter: rows[0].tokens_valid_after } : null;
}

export class TokenIssuer {
  private readonly verifier: TokenVerifier;

  constructor(private readonly options: TokenIssuerOptions) {
    this.verifier = new TokenVerifier({ jwks: options.keys.jwks(), issuer: options.issuer, audience: options.audience });
  }

  get ttlSeconds(): number {
    return this.options.ttlSeconds;
  }

  /**
   * Signs a token for `subject`. A member's token should come from signFresh, which keeps it
   * clear of the edge's tokens_valid_after rule; this is the signing itself. `issuedAt`
   * (whole seconds) defaults to now.
   */
  sign(subject: TokenSubject, issuedAt?: number): string {
    const { keys, issuer, audience, ttlSeconds } = this.options;
    const role = subject.tenant ? hasuraRoleFor(subject.tenant.role, subject.readOnly) : NO_TENANT_ROLE;
    const hasura: HasuraClaims = subject.tenant
      ? { 'x-hasura-user-id': subject.userId, 'x-hasura-tenant-id': subject.tenant.id, 'x-hasura-default-role': role, 'x-hasura-allowed-roles': [role] }
      : { 'x-hasura-user-id': subject.userId, 'x-hasura-default-role': role, 'x-hasura-allowed-roles': [role] };
    if (subject.apiKeyId) hasura['x-hasura-api-key-id'] = subject.apiKeyId;
    const payload: Record<string, unknown> = { [HASURA_NAMESPACE]: hasura };
    if (issuedAt !== undefined) payload.iat = issuedAt;
    if (subject.actor) payload.act = { sub: subject.actor };
    const key = keys.current;
    return jwt.sign(payload, key.privateKey, {
      algorithm: key.alg,
      keyid: key.kid,
      subject: subject.userId,
      issuer,
      audience,
      expiresIn: Math.min(subject.ttlSeconds ?? ttlSeconds, ttlSeconds),
    });
  }

  /**
   * Signs the token for what `read` finds in the database, so that the edge never takes it
   * for one issued before the member's last role or permission change: the edge refuses
   * iat <= floor(tokens_valid_after). The second of iat is fixed before `read` runs, so a
   * change that lands after the read is stamped in that second or a later one and refuses
   * this token, as it should (its role is stale). When the state read was stamped in that
   * same second or later (a member just added, or just changed), the token waits for the
   * next second and reads again: at most about a second, and only right after a change.
   */
  async signFresh<T extends FreshSubject>(read: () => Promise<T>): Promise<{ token: string; state: T }> {
    for (let attempt = 1; ; attempt += 1) {
      const issuedAt = floorSeconds(Date.now());
      const state = await read();
      const stampedIn = state.validAfter ? floorSeconds(state.validAfter.getTime()) : null;
      if (stampedIn === null || stampedIn < issuedAt || attempt === FRESH_READ_ATTEMPTS) {
        return { token: this.sign(state.subject, issuedAt), state };
      }
      await sleep(Math.max(1, Math.min((stampedIn + 1) * 1000 - Date.now() + 1, 1000)));
    }
  }

  /** Verifies signature (by kid), issuer, audience and expiry with the published keys; null when anything is off. */
  verify(token: string): Principal | null {
    return this.verifier.verify(token);
  }
}
