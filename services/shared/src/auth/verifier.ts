import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { tenantAccessOf, type TenantRole } from '../roles.js';

export const HASURA_NAMESPACE = 'https://hasura.io/jwt/claims';

export interface HasuraClaims {
  'x-hasura-user-id': string;
  'x-hasura-tenant-id'?: string;
  'x-hasura-default-role': string;
  'x-hasura-allowed-roles': string[];
  'x-hasura-api-key-id'?: string;
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

/** What a verified access token says about its bearer. */
export interface Principal {
  userId: string;
  tenantId: string | null;
  role: TenantRole | null;
  /** The token's Hasura role is a read-only one: it changes nothing, on any service or through GraphQL. */
  readOnly: boolean;
  apiKeyId: string | null;
  actor: string | null;
  issuedAt: number;
}

/** The auth service's published keys (GET /auth/.well-known/jwks.json). */
export interface Jwks {
  keys: (JsonWebKey & { kid: string; alg: string; use?: string })[];
}

export interface TokenVerifierOptions {
  jwks: Jwks;
  issuer: string;
  audience: string;
}

/** The only algorithm access tokens are signed with; anything else (none, HS256 with the public key) is refused. */
const ALGORITHMS = ['RS256'] as const;

/**
 * Verifies access tokens with public keys only: what every service but auth needs, and what
 * auth itself uses, so that there is one verification. Signature by kid, issuer, audience
 * and expiry; null when anything is off.
 */
export class TokenVerifier {
  private keys = new Map<string, KeyObject>();

  constructor(private readonly options: TokenVerifierOptions) {
    this.setKeys(options.jwks);
  }

  /** Fetches the JWKS from the auth service (e.g. http://auth:4000/auth/.well-known/jwks.json). */
  static async fromUrl(url: string, options: Omit<TokenVerifierOptions, 'jwks'>): Promise<TokenVerifier> {
    return new TokenVerifier({ ...options, jwks: await fetchJwks(url) });
  }

  /** Replaces the keys (after a rotation): keys the JWKS no longer lists stop verifying. */
  setKeys(jwks: Jwks): void {
    const keys = new Map<string, KeyObject>();
    for (const jwk of jwks.keys) {
      if (jwk.kty !== 'RSA' || (jwk.alg !== undefined && jwk.alg !== 'RS256') || (jwk.use !== undefined && jwk.use !== 'sig')) continue;
      // Only the public members: a JWKS that carried private ones still yields a public key.
      keys.set(jwk.kid, createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' }));
    }
    this.keys = keys;
  }

  /**
   * Re-reads the JWKS every `intervalMs`, so that after a rotation the new key verifies and a
   * retired one stops; a failed read keeps the keys it has. Returns the function that stops it.
   */
  keepFresh(url: string, intervalMs: number, onError: (error: unknown) => void = () => {}): () => void {
    const timer = setInterval(() => {
      fetchJwks(url).then((jwks) => this.setKeys(jwks), onError);
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  verify(token: string): Principal | null {
    const { issuer, audience } = this.options;
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded.payload === 'string') return null;
    const key = decoded.header.kid === undefined ? undefined : this.keys.get(decoded.header.kid);
    if (!key) return null;
    let claims: AccessTokenClaims;
    try {
      claims = jwt.verify(token, key, { algorithms: [...ALGORITHMS], issuer, audience }) as unknown as AccessTokenClaims;
    } catch {
      return null;
    }
    return principalOf(claims);
  }
}

/** The principal a token's verified claims describe; null when they do not describe one. */
function principalOf(claims: AccessTokenClaims): Principal | null {
  const hasura = claims[HASURA_NAMESPACE];
  if (!hasura || typeof claims.sub !== 'string') return null;
  const tenantId = hasura['x-hasura-tenant-id'] ?? null;
  const access = tenantId ? tenantAccessOf(hasura['x-hasura-default-role']) : null;
  if (tenantId && !access) return null;
  return {
    userId: claims.sub,
    tenantId,
    role: access?.role ?? null,
    readOnly: access?.readOnly ?? false,
    apiKeyId: hasura['x-hasura-api-key-id'] ?? null,
    actor: claims.act?.sub ?? null,
    issuedAt: claims.iat,
  };
}

export async function fetchJwks(url: string): Promise<Jwks> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`the JWKS at ${url} answered ${response.status}`);
  const body = (await response.json()) as Partial<Jwks>;
  if (!Array.isArray(body.keys)) throw new Error(`the JWKS at ${url} lists no keys`);
  return body as Jwks;
}
