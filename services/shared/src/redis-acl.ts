import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { assertTenantId, tenantAppPrefix } from './tenancy.js';

/** The Redis ACL user of a tenant's apps (POST /storage/credentials kind redis). */
export const tenantRedisUsername = (tenantId: string): string => `tenant-${assertTenantId(tenantId)}`;

/**
 * The commands a tenant's user may run, applied left to right after `-@all`.
 *
 * Granted: the data-type commands (every key argument is checked against the user's key
 * pattern by Redis), pub/sub (channels checked against the channel pattern; a PSUBSCRIBE
 * pattern must equal an allowed pattern literally), MULTI/EXEC/WATCH and the connection
 * commands.
 *
 * Denied on top of @admin and @dangerous, because Redis does not filter them by the key or
 * channel pattern, so they would show or touch other tenants' data or the platform's:
 * - KEYS, SCAN, RANDOMKEY, DBSIZE: key names and counts of the whole database.
 * - SELECT, MOVE, COPY (its DB option), SWAPDB: other databases, which the purge never reads.
 * - PUBSUB: lists every tenant's channels and subscriber counts.
 * - CLIENT TRACKING/CACHING/GETREDIR/TRACKINGINFO: BCAST tracking reports other tenants' keys.
 * - SORT, SORT_RO: BY/GET patterns read keys named by data.
 * - @scripting (EVAL, FUNCTION, SCRIPT): scripts run on the one server thread with no time
 *   limit that Redis enforces (a loop blocks every tenant and the edge's quota counters until
 *   someone sends SCRIPT KILL), and the script cache and function libraries are one namespace
 *   shared by everyone (SCRIPT FLUSH, FUNCTION LIST/DELETE/FLUSH). MULTI/EXEC and WATCH give
 *   apps atomic updates instead.
 */
export const TENANT_REDIS_COMMAND_RULES: readonly string[] = [
  '-@all',
  '+@read',
  '+@write',
  '+@string',
  '+@hash',
  '+@list',
  '+@set',
  '+@sortedset',
  '+@stream',
  '+@bitmap',
  '+@hyperloglog',
  '+@geo',
  '+@pubsub',
  '+@transaction',
  '+@connection',
  '-@admin',
  '-@dangerous',
  '-@scripting',
  '-keys',
  '-scan',
  '-randomkey',
  '-dbsize',
  '-select',
  '-move',
  '-copy',
  '-swapdb',
  '-flushall',
  '-flushdb',
  '-pubsub',
  '-sort',
  '-sort_ro',
  '-config',
  '-debug',
  '-monitor',
  '-shutdown',
  '-acl',
  '-migrate',
  '-restore',
  '-restore-asking',
  '-client|kill',
  '-client|list',
  '-client|tracking',
  '-client|caching',
  '-client|getredir',
  '-client|trackinginfo',
  '-client|pause',
  '-client|unpause',
  '-client|unblock',
  '-client|no-evict',
];

/** Keys, channels and commands of the tenant's user; passwords and on/off are set apart. */
export function tenantRedisRules(tenantId: string): string[] {
  const pattern = `${tenantAppPrefix(tenantId)}*`;
  return ['resetkeys', `~${pattern}`, 'resetchannels', `&${pattern}`, ...TENANT_REDIS_COMMAND_RULES];
}

async function userExists(redis: Redis, username: string): Promise<boolean> {
  return (await redis.call('ACL', 'GETUSER', username)) !== null;
}

/** Whether the tenant's user is on or off, or null when it does not exist. */
export async function tenantRedisUserState(redis: Redis, tenantId: string): Promise<'on' | 'off' | null> {
  const reply = (await redis.call('ACL', 'GETUSER', tenantRedisUsername(tenantId))) as unknown[] | null;
  if (reply === null) return null;
  const flags = reply[reply.indexOf('flags') + 1];
  return Array.isArray(flags) && flags.includes('on') ? 'on' : 'off';
}

/**
 * Writes the users to the server's ACL file, when it has one, so they survive a restart.
 * A server whose CONFIG command is renamed or denied cannot say: its operator persists
 * users their own way. A configured file that cannot be written is an error.
 */
async function persistUsers(redis: Redis): Promise<void> {
  let aclFile: string | undefined;
  try {
    const reply = (await redis.call('CONFIG', 'GET', 'aclfile')) as string[];
    aclFile = reply[1];
  } catch {
    return;
  }
  if (aclFile) await redis.call('ACL', 'SAVE');
}

/** Ends the user's open connections: `off` alone only refuses new ones. */
async function endConnections(redis: Redis, username: string): Promise<void> {
  await redis.call('CLIENT', 'KILL', 'USER', username);
}

/**
 * Makes the tenant's user if missing and sets it on or off; the key, channel and command
 * rules are written every time, so an existing user gets the current ones. A new user has
 * no password, so nobody can log in as it until rotateTenantRedisPassword. Off also ends
 * every connection the user has open.
 */
export async function ensureTenantRedisUser(redis: Redis, tenantId: string, { enabled }: { enabled: boolean }): Promise<void> {
  const username = tenantRedisUsername(tenantId);
  await redis.call('ACL', 'SETUSER', username, ...tenantRedisRules(tenantId), enabled ? 'on' : 'off');
  if (!enabled) await endConnections(redis, username);
  await persistUsers(redis);
}

/**
 * A new random password replaces every old one (for new logins: connections already
 * authenticated stay, as a credential request must not cut off the apps that run; suspend
 * ends them). A missing user is made, on; an existing one keeps its on/off.
 */
export async function rotateTenantRedisPassword(redis: Redis, tenantId: string): Promise<{ username: string; password: string }> {
  const username = tenantRedisUsername(tenantId);
  const password = randomBytes(32).toString('base64url');
  const onIfNew = (await userExists(redis, username)) ? [] : ['on'];
  await redis.call('ACL', 'SETUSER', username, ...tenantRedisRules(tenantId), ...onIfNew, 'resetpass', `>${password}`);
  await persistUsers(redis);
  return { username, password };
}

/** Deletes the user (Redis ends its connections); a user already gone is no error. */
export async function removeTenantRedisUser(redis: Redis, tenantId: string): Promise<void> {
  await redis.call('ACL', 'DELUSER', tenantRedisUsername(tenantId));
  await persistUsers(redis);
}
