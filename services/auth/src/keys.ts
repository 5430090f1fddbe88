import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject } from 'node:crypto';

export interface SigningKey {
  kid: string;
  alg: 'RS256';
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface Jwks {
  keys: (JsonWebKey & { kid: string; alg: string; use: 'sig' })[];
}

/**
 * The keys access tokens are signed with, newest first: the first signs, all are
 * published, so a retired key stays in the JWKS until the tokens it signed have expired.
 * RS256 because jsonwebtoken (via jwa) has no EdDSA, and every JWT consumer (Hasura
 * included) verifies RS256.
 */
export class KeyRing {
  readonly keys: readonly SigningKey[];

  constructor(keys: readonly SigningKey[]) {
    if (keys.length === 0) throw new Error('a key ring needs at least one key');
    this.keys = keys;
  }

  static fromPems(entries: readonly { kid: string; privateKeyPem: string }[]): KeyRing {
    return new KeyRing(
      entries.map(({ kid, privateKeyPem }) => {
        const privateKey = createPrivateKey(privateKeyPem);
        if (privateKey.asymmetricKeyType !== 'rsa') throw new Error(`signing key ${kid} is not an RSA key`);
        const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
        if (bits < 2048) throw new Error(`signing key ${kid} has ${bits} bits; at least 2048 are required`);
        return { kid, alg: 'RS256' as const, privateKey, publicKey: createPublicKey(privateKey) };
      }),
    );
  }

  /** A fresh key, for tests and a single dev process: tokens die with the process. */
  static generate(): KeyRing {
    return new KeyRing([generateSigningKey()]);
  }

  get current(): SigningKey {
    return this.keys[0]!;
  }

  find(kid: string | undefined): SigningKey | undefined {
    return this.keys.find((key) => key.kid === kid);
  }

  jwks(): Jwks {
    return {
      keys: this.keys.map((key) => ({ ...key.publicKey.export({ format: 'jwk' }), kid: key.kid, alg: key.alg, use: 'sig' as const })),
    };
  }
}

export function generateSigningKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  // The kid is the key's RFC 7638-style thumbprint prefix: stable across replicas that share a PEM.
  const jwk = publicKey.export({ format: 'jwk' });
  const kid = createHash('sha256').update(JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n })).digest('base64url').slice(0, 16);
  return { kid, alg: 'RS256', privateKey, publicKey };
}

/** A PEM for AUTH_SIGNING_KEYS (used by the README's one-liner and the tests). */
export function exportPrivatePem(key: SigningKey): string {
  return key.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}
