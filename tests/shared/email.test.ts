/**
 * normaliseEmail, and its agreement with the database: the unique indexes fold with
 * lower(… COLLATE "und-x-icu") and the CHECK app.is_normalised_email accepts exactly the
 * stored form, so the application and PostgreSQL must map case identically.
 */
import { afterAll, describe, expect, test } from 'vitest';
import { normaliseEmail } from '../../services/shared/src/email.js';
import { poolAs } from '../helpers/database.js';

const admin = poolAs('platform_admin', 2);
afterAll(() => admin.end());

describe('normaliseEmail', () => {
  test.each([
    ['x@bücher.test', 'x@xn--bcher-kva.test'],
    ['x@BÜCHER.test', 'x@xn--bcher-kva.test'],
    ['  X@Example.TEST ', 'x@example.test'],
    // Decomposed ü (u + combining diaeresis) composes to the same address.
    ['Mu\u0308ller@example.test', 'müller@example.test'],
    ['MÜLLER@example.test', 'müller@example.test'],
    ['STRAẞE@example.test', 'straße@example.test'],
    ['İSTANBUL@example.test', 'i\u0307stanbul@example.test'],
    ['ΟΔΟΣ@example.test', 'οδος@example.test'],
    ['ΣΟΦΙΑ@example.test', 'σοφια@example.test'],
    ['ПРИВЕТ@example.test', 'привет@example.test'],
    ['ops@МОСКВА.рф', 'ops@xn--80adxhks.xn--p1ai'],
    ['ops@ＥＸＡＭＰＬＥ.test', 'ops@example.test'],
    ['first.last+tag@sub.example.test', 'first.last+tag@sub.example.test'],
    // Look-alikes: compatibility forms become what they show; invisible characters are refused.
    ['ｚwn@example.test', 'zwn@example.test'],
    ['x＠example.test', 'x@example.test'],
    ['\uFB01nance@example.test', 'finance@example.test'],
    ['zw\u00ADn@example.test', null],
    ['zw\u200Dn@example.test', null],
    ['zw\u200Bn@example.test', null],
    ['zw\uFEFFn@example.test', null],
    ['zwn\u2060@example.test', null],
    ['a@b@example.test', null],
    ['plain', null],
    ['@example.test', null],
    ['x@', null],
    ['x@localhost', null],
    ['x@example', null],
    ['x@-bad.test', null],
    ['x@bad..test', null],
    ['x@example.test.', null],
    ['x@example.test:25', null],
    ['x@[127.0.0.1]', null],
    ['x@1.2.3.4', null],
    ['x y@example.test', null],
    ['x\u0000@example.test', null],
    [`${'a'.repeat(310)}@example.test`, null],
  ])('%j → %j', (input, expected) => {
    expect(normaliseEmail(input)).toBe(expected);
  });

  test('is idempotent', () => {
    for (const input of ['x@BÜCHER.test', 'İSTANBUL@example.test', 'ΟΔΟΣ@МОСКВА.рф', 'Mu\u0308ller@example.test']) {
      const once = normaliseEmail(input)!;
      expect(normaliseEmail(once)).toBe(once);
    }
  });
});

describe('the database folds as the application does', () => {
  // Upper-case letters whose lower case is not ASCII, the special cases of the default
  // mapping (İ → i + U+0307, final sigma), and one of each script the issue names.
  const LOCAL_PARTS = [
    'MÜLLER', 'ÄÖÜ', 'STRAẞE', 'straße', 'İSTANBUL', 'ISTANBUL', 'ΟΔΟΣ', 'ΣΟΦΙΑ', 'ΑΣ-ΒΣ', 'Σ', 'ПРИВЕТ', 'ЁЖИК',
    'ÅNGSTRÖM', 'ǄEMAL', 'ᾼ', 'Ⅻ', 'ＡＢＣ', 'Mu\u0308ller',
  ];

  test.each(LOCAL_PARTS)('%s: lower(… COLLATE "und-x-icu") gives what normaliseEmail gives, and the CHECK accepts it', async (local) => {
    const input = `${local}@example.test`;
    const normalised = normaliseEmail(input)!;
    const { rows } = await admin.query<{ icu: string; accepted: boolean; raw_accepted: boolean }>(
      `SELECT normalize(lower(normalize($1, NFKC) COLLATE "und-x-icu"), NFKC) AS icu,
              app.is_normalised_email($2) AS accepted,
              app.is_normalised_email($1) AS raw_accepted`,
      [input, normalised],
    );
    expect(rows[0]!.icu).toBe(normalised);
    expect(rows[0]!.accepted).toBe(true);
    // What normaliseEmail had to change, the CHECK refuses.
    expect(rows[0]!.raw_accepted).toBe(input === normalised);
  });

  test('the CHECK refuses compatibility forms and invisible characters, whoever writes', async () => {
    const { rows } = await admin.query<{ email: string; accepted: boolean }>(
      `SELECT email, app.is_normalised_email(email) AS accepted FROM unnest($1::text[]) AS email`,
      [['ａｂｃ@example.test', '\uFB01nance@example.test', 'zw\u00ADn@example.test', 'zw\u200Dn@example.test', 'zw\u2060n@example.test', 'zwn@example.test']],
    );
    expect(Object.fromEntries(rows.map((row) => [row.email, row.accepted]))).toEqual({
      'ａｂｃ@example.test': false,
      '\uFB01nance@example.test': false,
      'zw\u00ADn@example.test': false,
      'zw\u200Dn@example.test': false,
      'zw\u2060n@example.test': false,
      'zwn@example.test': true,
    });
  });

  test('the CHECK refuses a Unicode domain, upper case anywhere and decomposed forms', async () => {
    const { rows } = await admin.query<{ email: string; accepted: boolean }>(
      `SELECT email, app.is_normalised_email(email) AS accepted
         FROM unnest($1::text[]) AS email`,
      [['x@bücher.test', 'x@Example.test', 'X@example.test', 'mu\u0308ller@example.test', 'x@xn--bcher-kva.test']],
    );
    expect(Object.fromEntries(rows.map((row) => [row.email, row.accepted]))).toEqual({
      'x@bücher.test': false,
      'x@Example.test': false,
      'X@example.test': false,
      'mu\u0308ller@example.test': false,
      'x@xn--bcher-kva.test': true,
    });
  });
});
