import jwt from 'jsonwebtoken';
import type { KeyRing } from './keys.js';
import { HASURA_ROLE, tenantRoleOf } from '../../shared/src/roles.js';
import type { Role } from './permissions.js';

export const HASURA_NAMESPACE = 'https://hasura.io/jwt/claims';

/** The role a token carries when it names no tenant: Hasura serves it public data only. */
export const NO_TENANT_ROLE = 'anonymous';

export interface HasuraClaims {
  'x-hasura-user-id': string;
  'x-hasura-tenant-id'?: string;
  'x-hasura-default-role': string;
  'x-hasura-allowed-roles': string[];
  'x-hasura-api-key-id'?: string;
  /** The key's scopes as a Postgres array literal (Hasura session variables are strings), e.g. "{projects:read}". */
  'x-hasura-api-key-scopes'?: string;
}

export interface AccessTokenClaims {
  sub: string;
  iat: number;
  exp: number;
  iss: string;
  aud: string;
  [HASURA_NAMESPACE]: HasuraClaims;
  /** RFC 8693 actor: the staff user acting as `sub` (impersonation). */
  act?: { sub: string };
}

export interface TokenSubject {
  userId: string;
  /** null: a token for a user with no (active) tenant yet. */
  tenant: { id: string; role: Role } | null;
  apiKeyId?: string;
  apiKeyScopes?: readonly string[];
  actor?: string;
  /** Shorter than the default, e.g. for impersonation; never longer. */
  ttlSeconds?: number;
}

/** What a verified access token says about its bearer. */
export interface Principal {
  userId: string;
  tenantId: string | null;
  role: Role | null;
  apiKeyId: string | null;
  actor: string | null;
  issuedAt: number;
}

export interface TokenIssuerOptions {
  keys: KeyRing;
  issuer: string;
  audience: string;
  ttlSeconds: number;
}

export class TokenIssuer {
  constructor(private readonly options: TokenIssuerOptions) {}

  get ttlSeconds(): number {
    return this.options.ttlSeconds;
  }

  sign(subject: TokenSubject): string {
    const { keys, issuer, audience, ttlSeconds } = this.options;
    const hasura: HasuraClaims = subject.tenant
      ? {
          'x-hasura-user-id': subject.userId,
          'x-hasura-tenant-id': subject.tenant.id,
          'x-hasura-default-role': HASURA_ROLE[subject.tenant.role],
          'x-hasura-allowed-roles': [HASURA_ROLE[subject.tenant.role]],
        }
      : { 'x-hasura-user-id': subject.userId, 'x-hasura-default-role': NO_TENANT_ROLE, 'x-hasura-allowed-roles': [NO_TENANT_ROLE] };
    if (subject.apiKeyId) {
      hasura['x-hasura-api-key-id'] = subject.apiKeyId;
      hasura['x-hasura-api-key-scopes'] = `{${(subject.apiKeyScopes ?? []).join(',')}}`;
    }
    const payload: Record<string, unknown> = { [HASURA_NAMESPACE]: hasura };
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

  /** Verifies signature (by kid), issuer, audience and expiry; null when anything is off. */
  verify(token: string): Principal | null {
    const { keys, issuer, audience } = this.options;
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded.payload === 'string') return null;
    const key = keys.find(decoded.header.kid);
    if (!key) return null;
    let claims: AccessTokenClaims;
    try {
      claims = jwt.verify(token, key.publicKey, { algorithms: [key.alg], issuer, audience }) as unknown as AccessTokenClaims;
    } catch {
      return null;
    }
    const hasura = claims[HASURA_NAMESPACE];
    if (!hasura || typeof claims.sub !== 'string') return null;
    const tenantId = hasura['x-hasura-tenant-id'] ?? null;
    const role = tenantId ? tenantRoleOf(hasura['x-hasura-default-role']) : null;
    if (tenantId && !role) return null;
    return {
      userId: claims.sub,
      tenantId,
      role,
      apiKeyId: hasura['x-hasura-api-key-id'] ?? null,
      actor: claims.act?.sub ?? null,
      issuedAt: claims.iat,
    };
  }
}
