import { domainToASCII } from 'node:url';
import { z } from 'zod';

/** The longest address the database stores (users_email_format). */
export const MAX_EMAIL_LENGTH = 320;

const LOCAL_PART = /^[^@\s\p{Cc}]+$/u;
/**
 * Characters that render as nothing (soft hyphen, zero-width joiner and space, BOM, …): an
 * address holding one looks like another account's address, so it is refused rather than
 * stripped (by SMTP it is another mailbox).
 */
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\p{Cf}]/u;
/** The database's app.is_normalised_domain, which the users_email_normalised CHECK applies. */
const HOST_NAME = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * An email address in the one form Tenantry stores and compares: trimmed, Unicode NFKC
 * (compatibility forms such as fullwidth `ｚ` or `＠` become the letters they show, so no
 * look-alike account can be made with them), the domain as lower-case punycode, the local part lower-cased with the Unicode default
 * case mapping. String.prototype.toLowerCase is locale-independent and is the mapping
 * PostgreSQL's lower() applies under the ICU root collation ("und-x-icu"), which the
 * unique indexes and the users_email_normalised CHECK use; so `x@BÜCHER.test` and
 * `x@bücher.test` are one address here and in the database.
 *
 * A case mapping is not a case folding: Greek final sigma (ς) and σ, and ß and ss, stay
 * distinct, as they do in the database.
 *
 * Returns null for anything that is not an address with a host-name domain, and for an
 * address with invisible characters.
 */
export function normaliseEmail(input: string): string | null {
  const trimmed = input.trim().normalize('NFKC');
  if (INVISIBLE.test(trimmed)) return null;
  const at = trimmed.lastIndexOf('@');
  if (at <= 0) return null;
  const rawLocal = trimmed.slice(0, at);
  const rawDomain = trimmed.slice(at + 1);
  // domainToASCII lower-cases and maps an IDN to punycode (UTS 46); '' when it cannot.
  const domain = domainToASCII(rawDomain);
  if (domain.length > 253 || !HOST_NAME.test(domain)) return null;
  const local = foldLocalPart(rawLocal);
  if (!local || !LOCAL_PART.test(local)) return null;
  const email = `${local}@${domain}`;
  return email.length <= MAX_EMAIL_LENGTH ? email : null;
}

/**
 * Lower case, then NFKC again: lower-casing a normalised string can leave it unnormalised.
 * The database checks NFC (which NFKC implies) and lower case, so repeat until neither changes anything (one round
 * in practice; a string that never settles is refused).
 */
function foldLocalPart(local: string): string | null {
  let current = local;
  for (let round = 0; round < 3; round += 1) {
    const next = current.toLowerCase().normalize('NFKC');
    if (next === current) return current;
    current = next;
  }
  return null;
}

/**
 * An address in, its stored spelling out (normaliseEmail): every route compares and stores
 * the same form the database's unique index and CHECK expect.
 */
export const emailSchema = z
  .string()
  .trim()
  .max(MAX_EMAIL_LENGTH)
  .regex(/^[^@\s]+@[^@\s]+\.[^@\s]+$/, 'must be an email address')
  .transform((address, context) => {
    const email = normaliseEmail(address);
    if (email !== null) return email;
    context.addIssue({ code: 'custom', input: address, message: 'must be an email address with a valid domain name' });
    return z.NEVER;
  });
