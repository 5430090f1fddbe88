import dns2 from 'dns2';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { uniqueSlug } from '../fixtures/seed.js';
import { cli, cliEnv, purgesSince, redisClient, streamTail, PURGE_STREAM } from './helpers.js';

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
  test('add prints the TXT record; verify looks it up through DNS; set-primary needs a verified domain', async () => {
    const slug = uniqueSlug('dom');
    expect((await cli(['tenant', 'create', 'Domains', '--slug', slug], { env })).code).toBe(0);
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
      cli(['tenant', 'create', 'Other', '--slug', uniqueSlug('other'), '--json'], { env }),
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
    // One tenant per domain.
    const taken = await cli(['domain', 'add', other.json<{ slug: string }>().slug, normalised], { env });
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain(`domain '${normalised}' already belongs to a tenant`);

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
