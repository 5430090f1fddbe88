import { z } from 'zod';
import { normaliseEmail } from '../../shared/src/email.js';
import { inTransaction } from './context.js';
import { CliError, explainDatabaseError } from './errors.js';
import { findTenant, type TenantRow } from './tenants.js';

const hexColour = z.string().regex(/^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i, 'must be a hex colour such as #ff6600');
/** Shown to anonymous visitors and loaded by browsers: https only, no credentials in it. */
const httpsUrl = z
  .string()
  .max(2048)
  .refine((text) => {
    const url = URL.canParse(text) ? new URL(text) : undefined;
    return url?.protocol === 'https:' && url.username === '' && url.password === '';
  }, 'must be an https:// URL without user name or password');

/**
 * The public branding a tenant shows (tenants.settings.branding): anonymous callers read it
 * through Hasura for the tenant their host names, so it holds nothing secret and only these keys.
 */
export const brandingSchema = z.strictObject({
  display_name: z.string().trim().min(1, 'must not be empty').max(100, 'must be at most 100 characters'),
  primary_color: hexColour,
  accent_color: hexColour,
  logo_url: httpsUrl,
  favicon_url: httpsUrl,
  support_url: httpsUrl,
  support_email: z.string().transform((text, context) => {
    const email = normaliseEmail(text);
    if (email !== null) return email;
    context.addIssue({ code: 'custom', input: text, message: 'must be an email address' });
    return z.NEVER;
  }),
});
export type Branding = Partial<z.infer<typeof brandingSchema>>;
export const BRANDING_KEYS = Object.keys(brandingSchema.shape) as Array<keyof Branding>;

const unknownKey = (key: string) =>
  new CliError(`'${key}' is not a branding key — use ${BRANDING_KEYS.join(', ')} (private settings: \`tenantry setting set\`)`, 2);

/** KEY=VALUE pairs as typed: each key known, each value valid, or a usage error naming the problem. */
export function parseBrandingAssignments(assignments: string[]): Branding {
  const values: Record<string, string> = {};
  for (const assignment of assignments) {
    const separator = assignment.indexOf('=');
    if (separator <= 0) throw new CliError(`'${assignment}' is not KEY=VALUE — e.g. primary_color=#ff6600`, 2);
    const key = assignment.slice(0, separator);
    if (!BRANDING_KEYS.includes(key as keyof Branding)) throw unknownKey(key);
    values[key] = assignment.slice(separator + 1);
  }
  const parsed = brandingSchema.partial().safeParse(values);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CliError(`${String(issue.path[0])} '${values[String(issue.path[0])]}' ${issue.message}`, 2);
  }
  return parsed.data;
}

/** What is stored, as stored: an older or hand-written value that no longer validates is shown, not hidden. */
const storedBranding = (settings: unknown): Branding => {
  const branding = (settings as { branding?: unknown } | null)?.branding;
  return branding !== null && typeof branding === 'object' && !Array.isArray(branding) ? (branding as Branding) : {};
};

export interface BrandingResult {
  tenant: Pick<TenantRow, 'id' | 'slug'>;
  branding: Branding;
}

export async function getBranding(reference: string): Promise<BrandingResult> {
  return inTransaction(async (client) => {
    const tenant = await findTenant(reference, client);
    const { rows } = await client.query<{ settings: unknown }>('SELECT settings FROM tenants WHERE id = $1', [tenant.id]);
    return { tenant: { id: tenant.id, slug: tenant.slug }, branding: storedBranding(rows[0]!.settings) };
  });
}

/** Sets some keys and removes others in one audited update of tenants.settings (the tenants trigger logs it). */
export async function changeBranding(reference: string, change: { set?: Branding; unset?: string[] }): Promise<BrandingResult> {
  for (const key of change.unset ?? []) if (!BRANDING_KEYS.includes(key as keyof Branding)) throw unknownKey(key);
  try {
    return await inTransaction(async (client) => {
      const tenant = await findTenant(reference, client, true);
      const { rows } = await client.query<{ settings: unknown }>('SELECT settings FROM tenants WHERE id = $1', [tenant.id]);
      const branding: Record<string, unknown> = { ...storedBranding(rows[0]!.settings), ...change.set };
      for (const key of change.unset ?? []) delete branding[key];
      await client.query(`UPDATE tenants SET settings = jsonb_set(settings, '{branding}', $2::jsonb) WHERE id = $1`, [
        tenant.id,
        JSON.stringify(branding),
      ]);
      return { tenant: { id: tenant.id, slug: tenant.slug }, branding: branding as Branding };
    });
  } catch (error) {
    throw explainDatabaseError(error, { tenant: reference });
  }
}
