import dns2 from 'dns2';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { explainDatabaseError } from '../../services/cli/src/errors.js';
import { uniqueSlug } from '../fixtures/seed.js';
import { cli, cliEnv, ownerEmail, purgesSince, redisClient, streamTail, PURGE_STREAM } from './helpers.js';

/** A real DNS server on a free UDP port, answering TXT questions from `records`. */
const records = new Map<string, string[]>();
const server = dns2.createServer({
  udp: true,
  handle: (request, send) => {
    const response = dns2.Packet.createResponseFromRequest(request);
    const [question] = request.questions;
    if (question && question.type === dns2.Packet.TYPE.TXT) {
      for (const value of records.get(question.name.toLowerCase()) ?? []) {
        response.answers.push({ name: question.name, type: dns2.Packet.TYPE.TXT, class: dns2.Packet.CLASS.IN, ttl: 1, data: value });
      }
    }
    send(response);
  },
});
let env: NodeJS.ProcessEnv;
let redis: Redis;

beforeAll(async () => {
  await server.listen({ udp: { port: 0, address: '127.0.0.1' } });
  env = cliEnv({ TENANTRY_DNS_SERVER: `127.0.0.1:${server.addresses().udp!.port}` });
  redis = redisClient();
});
afterAll(async () => {
  await server.close();
  await redis.del(PURGE_STREAM);
  redis.disconnect();
});

interface DomainJson {
  domain: string;
  verified: boolean;
  verified_at: string | null;
  is_primary: boolean;
  txt_record: { type: 'TXT'; name: string; value: string };
  created_at: string;
}

describe.concurrent('domains', () => {
  // About thirty CLI processes, each a Node start-up: on a loaded machine that outlasts the default.
  test('add prints the TXT record; verify looks it up through DNS; set-primary needs a verified domain', { timeout: 120_000 }, async () => {
    const slug = uniqueSlug('dom');
    expect((await cli(['tenant', 'create', 'Domains', '--slug', slug, '--owner', await ownerEmail('domains'), '--plan', 'starter'], { env })).code).toBe(0);
    const domain = `App.${slug}.Example.TEST.`;
    const normalised = `app.${slug}.example.test`;

    const added = await cli(['domain', 'add', slug, domain], { env });
    expect(added.code, added.stderr).toBe(0);
    const [, recordLine] = added.stdout.trim().split('\n');
    const token = /"([0-9a-f]{32})"/.exec(recordLine!)?.[1];
    expect(recordLine).toBe(`  _tenantry-challenge.${normalised}  TXT  "${token}"`);

    const second = (await cli(['domain', 'add', slug, `www.${slug}.example.test`, '--json'], { env })).json<DomainJson>();
    expect(second).toMatchObject({ domain: `www.${slug}.example.test`, verified: false, is_primary: false });
    expect(second.txt_record).toEqual({ type: 'TXT', name: `_tenantry-challenge.www.${slug}.example.test`, value: expect.stringMatching(/^[0-9a-f]{32}$/) });

    const [noRecord, primaryUnverified, bad, ip, other] = await Promise.all([
      cli(['domain', 'verify', slug, normalised], { env }),
      cli(['domain', 'set-primary', slug, normalised], { env }),
      cli(['domain', 'add', slug, 'not a domain'], { env }),
      cli(['domain', 'add', slug, '10.0.0.1'], { env }),
      cli(['tenant', 'create', 'Other', '--slug', uniqueSlug('other'), '--owner', await ownerEmail('other'), '--plan', 'starter', '--json'], { env }),
    ]);
    expect(noRecord.code).toBe(1);
    expect(noRecord.stderr).toBe(
      `tenantry: domain '${normalised}' is not verified: no TXT record at _tenantry-challenge.${normalised} — create it with the value ${token} and retry\n`,
    );
    expect(primaryUnverified.code).toBe(1);
    expect(primaryUnverified.stderr).toContain(`domain '${normalised}' is not verified — run \`tenantry domain verify ${slug} ${normalised}\` first`);
    for (const refused of [bad, ip]) {
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/is not a valid domain name — give a host name such as app\.example\.com/);
    }
    // An unverified domain blocks nobody: another tenant may claim it too (issue 13, point 7)…
    const otherSlug = other.json<{ slug: string }>().slug;
    const claimed = await cli(['domain', 'add', otherSlug, normalised, '--json'], { env });
    expect(claimed.code, claimed.stderr).toBe(0);
    expect(claimed.json<DomainJson>()).toMatchObject({ domain: normalised, verified: false });
    // …but only once.
    const twice = await cli(['domain', 'add', otherSlug, normalised], { env });
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain(`domain '${normalised}' is already a domain of tenant '${otherSlug}'`);

    // A wrong value is not enough.
    records.set(`_tenantry-challenge.${normalised}`, ['something-else']);
    const wrong = await cli(['domain', 'verify', slug, normalised], { env });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`does not hold ${token}`);

    records.set(`_tenantry-challenge.${normalised}`, ['something-else', token!]);
    const tail = await streamTail(redis);
    const verified = await cli(['domain', 'verify', slug, domain, '--json'], { env });
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.json()).toMatchObject({ domain: normalised, verified: true, already_verified: false });
    expect(await purgesSince(redis, tail)).toContainEqual({ domain: normalised });
    const again = await cli(['domain', 'verify', slug, normalised], { env });
    expect(again.stdout).toBe(`${normalised} was already verified\n`);

    // The first to verify keeps it: the other tenant's claim is gone, and it cannot claim
    // the domain again through the CLI while it is verified here.
    const otherList = await cli(['domain', 'list', otherSlug, '--json'], { env });
    expect(otherList.json<DomainJson[]>().map((row) => row.domain)).not.toContain(normalised);
    const late = await cli(['domain', 'add', otherSlug, normalised], { env });
    expect(late.code).toBe(1);
    expect(late.stderr).toBe(
      `tenantry: domain '${normalised}' is verified by tenant '${slug}' — remove it there first (\`tenantry domain remove ${slug} ${normalised}\`)\n`,
    );

    const primary = await cli(['domain', 'set-primary', slug, normalised, '--json'], { env });
    expect(primary.code, primary.stderr).toBe(0);
    expect(primary.json<DomainJson>().is_primary).toBe(true);

    const [list, human] = await Promise.all([cli(['domain', 'list', slug, '--json'], { env }), cli(['domain', 'list', slug], { env })]);
    const listed = list.json<DomainJson[]>();
    expect(listed.map((row) => [row.domain, row.verified, row.is_primary])).toEqual([
      [normalised, true, true],
      [`www.${slug}.example.test`, false, false],
    ]);
    for (const row of listed) {
      expect(Object.keys(row).sort()).toEqual(['created_at', 'domain', 'is_primary', 'txt_record', 'verified', 'verified_at']);
    }
    expect(human.stdout).toMatch(new RegExp(`app\\.${slug}\\.example\\.test\\s+yes\\s+yes`));

    const tail2 = await streamTail(redis);
    const removed = await cli(['domain', 'remove', slug, normalised], { env });
    expect(removed.code, removed.stderr).toBe(0);
    expect(await purgesSince(redis, tail2)).toContainEqual({ domain: normalised });
    const missing = await cli(['domain', 'remove', slug, normalised], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`domain '${normalised}' is not a domain of tenant '${slug}' — see \`tenantry domain list ${slug}\``);
  });
});

test("a plan without custom domains: add is refused naming the way out, and nothing is written", async () => {
  const slug = uniqueSlug('free-dom');
  expect((await cli(['tenant', 'create', 'Free', '--slug', slug, '--owner', await ownerEmail('free-dom')], { env })).code).toBe(0);
  const refused = await cli(['domain', 'add', slug, `app.${slug}.example.test`], { env });
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/does not include custom domains — move it to a plan that does/);
  const listed = await cli(['domain', 'list', slug, '--json'], { env });
  expect(listed.code, listed.stderr).toBe(0);
  expect(listed.json()).toEqual([]);
});

describe('a domain another tenant verified first', () => {
  const admin = new pg.Pool({ connectionString: cliEnv().PLATFORM_ADMIN_DATABASE_URL, max: 2 });
  afterAll(() => admin.end());

  async function tenantWithClaim(label: string, domain: string): Promise<{ slug: string; token: string }> {
    const created = await cli(['tenant', 'create', label, '--slug', uniqueSlug(label), '--owner', await ownerEmail(label), '--plan', 'starter', '--json'], { env });
    const slug = created.json<{ slug: string }>().slug;
    const added = await cli(['domain', 'add', slug, domain, '--json'], { env });
    expect(added.code, added.stderr).toBe(0);
    return { slug, token: added.json<DomainJson>().txt_record.value };
  }

  test('a claim made before the other tenant verified cannot be verified: a clear error, no change', async () => {
    const domain = `contested-${uniqueSlug('d')}.example.test`;
    const first = await tenantWithClaim('First', domain);
    const second = await tenantWithClaim('Second', domain);
    records.set(`_tenantry-challenge.${domain}`, [first.token, second.token]);
    expect((await cli(['domain', 'verify', first.slug, domain], { env })).code).toBe(0);
    // The second tenant's claim went with the first verification; a claim made since (as a
    // tenant admin may, through GraphQL) is refused at verification.
    await admin.query('INSERT INTO tenant_domains (tenant_id, domain) SELECT id, $2 FROM tenants WHERE slug = $1', [second.slug, domain]);
    const refused = await cli(['domain', 'verify', second.slug, domain], { env });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`domain '${domain}' is verified by tenant '${first.slug}' — remove it there first`);
    const { rows } = await admin.query<{ slug: string; verified: boolean }>(
      `SELECT t.slug, d.verified_at IS NOT NULL AS verified FROM tenant_domains d JOIN tenants t ON t.id = d.tenant_id
        WHERE d.domain = $1 ORDER BY verified DESC`,
      [domain],
    );
    expect(rows).toEqual([
      { slug: first.slug, verified: true },
      { slug: second.slug, verified: false },
    ]);
  });

  test("the database's refusal of a second verification reads as a sentence", async () => {
    const domain = `second-${uniqueSlug('d')}.example.test`;
    const first = await tenantWithClaim('Winner', domain);
    const second = await tenantWithClaim('Loser', domain);
    const verify = (slug: string) =>
      admin.query('UPDATE tenant_domains SET verified_at = now() WHERE domain = $2 AND tenant_id = (SELECT id FROM tenants WHERE slug = $1)', [slug, domain]);
    await verify(first.slug);
    await admin.query('INSERT INTO tenant_domains (tenant_id, domain) SELECT id, $2 FROM tenants WHERE slug = $1', [second.slug, domain]);
    const error = await verify(second.slug).then(
      () => undefined,
      (refusal: unknown) => refusal,
    );
    expect(explainDatabaseError(error, { domain }).message).toBe(
      `domain '${domain}' is already verified by another tenant — the first tenant to verify a domain keeps it; remove it there first`,
    );
  });
});
