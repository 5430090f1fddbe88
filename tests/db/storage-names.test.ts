/**
 * What a file row may hold (migration 1795900700000_storage): app.is_valid_file_name, the
 * logical bucket, the content type and the digest, for every writer.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import { withTenant } from '../../services/shared/src/db/tenant-context.js';
import { dbError } from '../fixtures/seed.js';
import { poolAs } from '../helpers/database.js';
import { SHA, storageTenant } from './storage-kit.js';

const admin = poolAs('platform_admin');
const service = poolAs('app_service');
afterAll(async () => {
  await Promise.all([admin.end(), service.end()]);
});

/** Asks app.is_valid_file_name about many names in one round trip, as app_service. */
async function validNames(names: string[]): Promise<boolean[]> {
  const { rows } = await service.query<{ valid: boolean }>(
    'SELECT app.is_valid_file_name(n) AS valid FROM unnest($1::text[]) WITH ORDINALITY AS t(n, i) ORDER BY i',
    [names],
  );
  return rows.map((row) => row.valid);
}

const ACCEPTED = [
  'a',
  'report.pdf',
  'archive.tar.gz',
  '.hidden',
  '..dots-in-a-name..',
  'a..b',
  'name with spaces.txt',
  ' leading and trailing space ',
  'a/b/c.txt',
  'photos/2026/été — Zürich 東京 🌊.jpg',
  `${'x'.repeat(254)}/`.repeat(4) + 'abcd', // 1024 bytes, segments of 254
  `${'é'.repeat(127)}/`.repeat(4) + 'éé', // 1024 bytes in UTF-8, segments of 254
  'x'.repeat(255),
];

const REFUSED: Array<[string, string]> = [
  ['empty', ''],
  ['segment over 255 bytes', `a/${'x'.repeat(256)}`],
  ['segment over 255 bytes in UTF-8', 'é'.repeat(128)],
  ['parent segment first', '../x'],
  ['parent segment inside', 'a/../b'],
  ['parent segment last', 'a/..'],
  ['parent alone', '..'],
  ['current segment', 'a/./b'],
  ['dot alone', '.'],
  ['dot last', 'a/.'],
  ['empty segment', 'a//b'],
  ['leading slash', '/a'],
  ['trailing slash', 'a/'],
  ['slash alone', '/'],
  ['newline', 'a\nb'],
  ['carriage return', 'a\rb'],
  ['tab', 'a\tb'],
  ['U+0001', 'a\u0001b'],
  ['U+001F', 'a\u001fb'],
  ['DEL', 'a\u007fb'],
  ['backslash', 'a\\b'],
  ['backslash traversal', '..\\x'],
  ['1025 bytes', 'x'.repeat(1025)],
  ['1025 bytes of UTF-8', `${'é'.repeat(512)}x`],
];

describe('app.is_valid_file_name', () => {
  test('accepts ordinary names: unicode, spaces, dots inside names, nested paths, 1024 bytes', async () => {
    expect(await validNames(ACCEPTED)).toEqual(ACCEPTED.map(() => true));
  });

  test.each(REFUSED)('refuses %s', async (_label, name) => {
    expect(await validNames([name])).toEqual([false]);
  });

  test('property: segments of ordinary characters joined by one slash are accepted; any "." or ".." segment, empty segment or control character is refused', async () => {
    const segmentCharacter = fc.constantFrom(...'abcXYZ019 -_.~()+,;=@ÄéЖ中🌊'.split(/(?:)/u));
    const segment = fc
      .array(segmentCharacter, { minLength: 1, maxLength: 12 })
      .map((characters) => characters.join(''))
      .filter((text) => text !== '.' && text !== '..');
    const segments = fc.array(segment, { minLength: 1, maxLength: 6 });
    const badSegment = fc.constantFrom('.', '..', '');
    const control = fc.integer({ min: 1, max: 0x1f }).map((code) => String.fromCharCode(code));

    await fc.assert(
      fc.asyncProperty(segments, fc.nat(), badSegment, control, async (parts, position, bad, controlCharacter) => {
        const good = parts.join('/');
        const at = position % (parts.length + 1);
        const withBadSegment = [...parts.slice(0, at), bad, ...parts.slice(at)].join('/');
        const cut = position % (good.length + 1);
        const withControl = good.slice(0, cut) + controlCharacter + good.slice(cut);
        expect(await validNames([good, withBadSegment, withControl, `${good}\\`])).toEqual([
          Buffer.byteLength(good) <= 1024,
          false,
          false,
          false,
        ]);
      }),
      { numRuns: 200 },
    );
  });
});

describe('the columns refuse malformed rows for every writer', () => {
  const row = { bucket: 'docs', name: 'ok.txt', size: 1, content_type: 'text/plain', sha256: SHA };
  const cases: Array<[string, Partial<typeof row>, string]> = [
    ['a traversing name', { name: '../etc/passwd' }, 'name_valid'],
    ['an upper-case bucket', { bucket: 'Docs' }, 'bucket_valid'],
    ['a bucket with a slash', { bucket: 'a/b' }, 'bucket_valid'],
    ['a bucket ending in a hyphen', { bucket: 'docs-' }, 'bucket_valid'],
    ['a 64-character bucket', { bucket: 'b'.repeat(64) }, 'bucket_valid'],
    ['a negative size', { size: -1 }, 'size_valid'],
    ['a content type without subtype', { content_type: 'text' }, 'content_type_valid'],
    ['a content type with a newline', { content_type: 'text/plain\r\nX-Evil: 1' }, 'content_type_valid'],
    ['a content type of 256 characters', { content_type: `text/${'p'.repeat(251)}` }, 'content_type_valid'],
    ['an upper-case digest', { sha256: 'C'.repeat(64) }, 'sha256_valid'],
    ['a short digest', { sha256: 'c'.repeat(63) }, 'sha256_valid'],
  ];

  test.each(cases)('%s', async (_label, change, constraint) => {
    const tenant = await storageTenant(admin, 'sn-cols');
    const values = { ...row, ...change };
    for (const table of ['files', 'file_uploads'] as const) {
      const extra = table === 'file_uploads' ? ", expires_at) VALUES ($1, $2, $3, $4, $5, $6, now() + interval '1 hour')" : ') VALUES ($1, $2, $3, $4, $5, $6)';
      const error = await dbError(
        withTenant(service, { tenantId: tenant.tenantId, role: 'owner' }, (client) =>
          client.query(`INSERT INTO ${table} (tenant_id, bucket, name, size, content_type, sha256${extra}`, [
            tenant.tenantId,
            values.bucket,
            values.name,
            values.size,
            values.content_type,
            values.sha256,
          ]),
        ),
      );
      expect({ code: error?.code, constraint: error?.constraint }, `${table}: ${error?.message}`).toEqual({
        code: '23514',
        constraint: `${table}_${constraint}`,
      });
    }
  });

  test('well-formed values are taken: a 63-character bucket, a content type with parameters', async () => {
    const tenant = await storageTenant(admin, 'sn-ok');
    await withTenant(service, { tenantId: tenant.tenantId, role: 'owner' }, (client) =>
      client.query(
        `INSERT INTO files (tenant_id, bucket, name, size, content_type, sha256) VALUES ($1, $2, 'ok.txt', 0, 'text/plain; charset=utf-8', $3)`,
        [tenant.tenantId, `a${'-'.repeat(61)}z`, SHA],
      ),
    );
  });

  test('one name per bucket: a second file of the same name, and a second pending upload of it, are refused', async () => {
    const tenant = await storageTenant(admin, 'sn-taken');
    const insert = (table: 'files' | 'file_uploads', bucket = 'docs') =>
      withTenant(service, { tenantId: tenant.tenantId, role: 'owner' }, (client) =>
        client.query(
          table === 'files'
            ? `INSERT INTO files (tenant_id, bucket, name, size, content_type, sha256) VALUES ($1, $2, 'same.txt', 1, 'text/plain', $3)`
            : `INSERT INTO file_uploads (tenant_id, bucket, name, size, content_type, sha256, expires_at) VALUES ($1, $2, 'same.txt', 1, 'text/plain', $3, now() + interval '1 hour')`,
          [tenant.tenantId, bucket, SHA],
        ),
      );
    await insert('files');
    expect(await dbError(insert('files'))).toMatchObject({ code: '23505', constraint: 'files_name_taken' });
    await insert('files', 'other');
    await insert('file_uploads');
    expect(await dbError(insert('file_uploads'))).toMatchObject({ code: '23505', constraint: 'file_uploads_name_pending' });
    await admin.query("UPDATE file_uploads SET status = 'expired' WHERE tenant_id = $1", [tenant.tenantId]);
    await insert('file_uploads');
  });
});
