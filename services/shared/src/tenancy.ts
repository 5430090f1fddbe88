import { domainToASCII } from 'node:url';
import { z } from 'zod';

/** The slug format the database enforces (app.is_valid_slug), minus the reserved words it alone knows. */
export const slugSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/, 'must be 3–63 characters of a-z, 0-9 and -, starting and ending with a letter or digit')
  .refine((slug) => !slug.includes('--'), 'must not contain "--"');

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A host name as the database stores it: lower case, no port, no trailing dot, IDN as
 * punycode. Returns null for anything that is not a host name (an IP literal included).
 */
export function normaliseDomain(input: string): string | null {
  const withoutPort = input.trim().replace(/:\d+$/, '');
  const ascii = domainToASCII(withoutPort.replace(/\.+$/, ''));
  if (!ascii || ascii.length > 253) return null;
  const labels = ascii.split('.');
  if (labels.length < 2 || !labels.every((label) => LABEL.test(label))) return null;
  if (/^\d+$/.test(labels[labels.length - 1]!)) return null;
  return ascii;
}

/** A tenant's object-storage bucket: one per tenant (docs/architecture.md, the diagram's storage service). */
export const tenantBucket = (tenantId: string): string => `tenant-${tenantId}`;

/**
 * The prefix of every Redis key of a tenant. The braces are a Redis Cluster hash tag: one
 * tenant's keys share a slot (docs/architecture.md, "Past one machine"), and a purge finds
 * them all with one SCAN pattern.
 */
export const tenantRedisPrefix = (tenantId: string): string => `tenant:{${tenantId}}:`;
