import { describe, expect, test } from 'vitest';
import { uniqueSlug } from '../fixtures/seed.js';
import { cli, ownerEmail } from './helpers.js';

describe.concurrent('settings', () => {
  test('set parses JSON when it is JSON, keeps dotted keys, and get / list / unset read them back', async () => {
    const slug = uniqueSlug('settings');
    expect((await cli(['tenant', 'create', 'Settings', '--slug', slug, '--owner', await ownerEmail('settings')])).code).toBe(0);

    const values: Array<[string, string, unknown, string[]?]> = [
      ['branding.primary_color', '#ff6600', '#ff6600'],
      ['limits.max_projects', '42', 42],
      ['features.beta', 'true', true],
      ['branding.logo', '{"url":"https://cdn.example.test/logo.png","width":120}', { url: 'https://cdn.example.test/logo.png', width: 120 }],
      ['support.hours', '["mon","tue"]', ['mon', 'tue']],
      ['support.phone', '0123', '0123', ['--string']],
      ['notes.plain', 'hello world', 'hello world'],
    ];
    const set = await Promise.all(values.map(([key, raw, , extra]) => cli(['setting', 'set', slug, key, raw, ...(extra ?? []), '--json'])));
    set.forEach((result, index) => {
      expect(result.code, result.stderr).toBe(0);
      expect(result.json()).toMatchObject({ key: values[index]![0], value: values[index]![2] });
    });

    const [get, getJson, list, branding, human, badJson, badKey, missing] = await Promise.all([
      cli(['setting', 'get', slug, 'branding.logo']),
      cli(['setting', 'get', slug, 'limits.max_projects', '--json']),
      cli(['setting', 'list', slug, '--json']),
      cli(['setting', 'list', slug, '--prefix', 'branding', '--json']),
      cli(['setting', 'list', slug]),
      cli(['setting', 'set', slug, 'branding.theme', '{"dark": tru']),
      cli(['setting', 'set', slug, 'Branding..Color', 'red']),
      cli(['setting', 'get', slug, 'nothing.here']),
    ]);
    expect(JSON.parse(get.stdout)).toEqual({ url: 'https://cdn.example.test/logo.png', width: 120 });
    expect(getJson.json()).toMatchObject({ key: 'limits.max_projects', value: 42 });
    expect(Object.keys(getJson.json<object>()).sort()).toEqual(['key', 'updated_at', 'value']);
    const listed = list.json<Array<{ key: string; value: unknown }>>();
    expect(Object.fromEntries(listed.map((row) => [row.key, row.value]))).toEqual(Object.fromEntries(values.map(([key, , value]) => [key, value])));
    expect(branding.json<Array<{ key: string }>>().map((row) => row.key)).toEqual(['branding.logo', 'branding.primary_color']);
    expect(human.stdout).toMatch(/limits\.max_projects\s+42/);
    expect(badJson.code).toBe(1);
    expect(badJson.stderr).toMatch(/^tenantry: VALUE \{"dark": tru looks like JSON but does not parse .* — fix it, or pass --string to store it as text\n$/);
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toContain("setting key 'Branding..Color' is invalid — use lower-case dotted names such as branding.primary_color");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`tenant '${slug}' has no setting 'nothing.here' — see \`tenantry setting list ${slug}\``);

    const unset = await cli(['setting', 'unset', slug, 'features.beta']);
    expect(unset.code, unset.stderr).toBe(0);
    const after = await cli(['setting', 'get', slug, 'features.beta']);
    expect(after.code).toBe(1);
    const unsetAgain = await cli(['setting', 'unset', slug, 'features.beta']);
    expect(unsetAgain.code).toBe(1);
  });
});
