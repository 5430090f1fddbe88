import { domainToASCII } from 'node:url';
import { z } from 'zod';
import { isUuid } from './ids.js';

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
 * A tenant id as the database writes it (a lower-case uuid), else a TypeError. The Redis
 * prefixes below go into SCAN patterns and ACL rules, where `*`, `?`, `[` or a space would
 * widen or break them, and an upper-case spelling would be a second namespace of one tenant.
 */
export function assertTenantId(tenantId: string): string {
  if (!isUuid(tenantId) || tenantId !== tenantId.toLowerCase()) throw new TypeError(`not a tenant id: ${JSON.stringify(tenantId)}`);
  return tenantId;
}

/**
 * The prefix of every Redis key of a tenant. The braces are a Redis Cluster hash tag: one
 * tenant's keys share a slot (docs/architecture.md, "Past one machine"), and a purge finds
 * them all with one SCAN pattern. Build keys with tenantRedis (tenant-redis.ts), not by hand.
 */
export const tenantRedisPrefix = (tenantId: string): string => `tenant:{${assertTenantId(tenantId)}}:`;

/** The platform's keys of a tenant (quota counters, throttles): the tenant's own user never reaches them. */
export const tenantPlatformPrefix = (tenantId: string): string => `${tenantRedisPrefix(tenantId)}platform:`;

/** The tenant's own keys and channels: all its Redis ACL user may touch (redis-acl.ts). */
export const tenantAppPrefix = (tenantId: string): string => `${tenantRedisPrefix(tenantId)}app:`;
