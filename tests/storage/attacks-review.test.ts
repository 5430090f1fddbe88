/**
 * A security review of the storage service and the namespaces S3 and Redis enforce (issue
 * 17): requests an attacker would craft by hand, signed with the scoped credentials the
 * service hands out, against the real MinIO and Redis of the test run.
 */
import { createHash, createHmac } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { objectKey, tenantStorageLocation, type StorageLayout, type TenantStorageLocation } from '../../services/shared/src/storage/location.js';
import { hex } from '../fixtures/seed.js';
import { services } from '../helpers/database.js';
import {
  committedBytes,
  createStorageTenant,
  fileName,
  postForm,
  REGION,
  sha256Hex,
  startStorageHarness,
  StorageClient,
  type Body,
  type StorageHarness,
  type StorageTenant,
} from './harness.js';
import { connectAsTenant } from './lifecycle-helpers.js';
import { BASE_DOMAIN, sendRaw, startEdgeHarness, type EdgeHarness, type Echo } from '../edge/harness.js';

interface ScopedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();
/** As Go's url.QueryEscape then MinIO's '+' → %20: every byte but the unreserved ones. */
const escape = (text: string) => encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * A request signed with SigV4 (header auth) exactly as written: the path and the query
 * (repeated keys kept in their order, as Go's url.Values.Encode keeps them) go out as given,
 * and `unsigned` headers ride along outside the signature, as any client may add them.
 */
function signedS3(
  credentials: ScopedCredentials,
  method: string,
  path: string,
  query: Array<[string, string]> = [],
  { unsigned = {}, body = '', through }: { unsigned?: Record<string, string>; body?: string; through?: { url: string; host: string } } = {},
): Promise<RawAnswer> {
  const endpoint = new URL(services().endpoints.s3.endpoint);
  const connectTo = new URL(through?.url ?? endpoint.href);
  if (through) endpoint.host = `${through.host}:${connectTo.port}`;
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const payloadHash = sha256Hex(body);
  const headers: Record<string, string> = {
    host: endpoint.host,
    'x-amz-content-sha256': payloadHash,
    'x-amz-date': amzDate,
    'x-amz-security-token': credentials.sessionToken,
  };
  const keys = [...new Set(query.map(([key]) => key))].sort();
  const canonicalQuery = keys.flatMap((key) => query.filter(([other]) => other === key).map(([, value]) => `${escape(key)}=${escape(value)}`)).join('&');
  const canonicalUri = path
    .split('/')
    .map((segment) => escape(segment))
    .join('/');
  const signedNames = Object.keys(headers).sort();
  const canonicalRequest = [method, canonicalUri, canonicalQuery, signedNames.map((name) => `${name}:${headers[name]}\n`).join(''), signedNames.join(';'), payloadHash].join('\n');
  const scope = `${day}/${REGION}/s3/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), REGION), 's3'), 'aws4_request');
  const signature = createHmac('sha256', signingKey).update(stringToSign).digest('hex');
  const authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedNames.join(';')}, Signature=${signature}`;
  const target = `${canonicalUri}${canonicalQuery ? `?${canonicalQuery}` : ''}`;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: connectTo.hostname,
        port: Number(connectTo.port),
        method,
        path: target,
        headers: { ...headers, ...unsigned, authorization, 'content-length': Buffer.byteLength(body) },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const expectError = (reply: { status: number; body: Body }, status: number, code: string) => {
  expect({ status: reply.status, code: reply.body?.error?.code }).toEqual({ status, code });
};

describe.each(['prefix', 'bucket'] as const)('scoped S3 credentials, %s layout: what MinIO lets them do', (layout: StorageLayout) => {
  let h: StorageHarness;
  let a: StorageTenant;
  let b: StorageTenant;
  let credentials: ScopedCredentials;
  let mine: TenantStorageLocation;
  let theirs: TenantStorageLocation;
  let theirKey: string;
  let ownKey: string;

  beforeAll(async () => {
    h = await startStorageHarness(layout);
    [a, b] = await Promise.all([createStorageTenant(h.admin, 'rev-a'), createStorageTenant(h.admin, 'rev-b')]);
    mine = tenantStorageLocation(a.tenantId, { layout, sharedBucket: h.sharedBucket });
    theirs = tenantStorageLocation(b.tenantId, { layout, sharedBucket: h.sharedBucket });
    for (const bucket of new Set([mine.bucket, theirs.bucket])) await h.s3.makeBucket(bucket, REGION).catch(() => undefined);
    theirKey = objectKey(theirs, 'docs', `secret-${hex(4)}.txt`);
    ownKey = objectKey(mine, 'docs', `own-${hex(4)}.txt`);
    await h.s3.putObject(theirs.bucket, theirKey, 'b only');
    await h.s3.putObject(mine.bucket, ownKey, 'a reads');
    const issued = await new StorageClient(h.service.url, h.token(a.users.owner, a.tenantId, 'owner')).call('POST', '/storage/credentials', { kind: 's3' });
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    credentials = issued.body;
  });
  afterAll(() => h?.close());

  test('the hand-made signature is right: A reads its own, and lists it in the bucket layout only', async () => {
    const listed = await signedS3(credentials, 'GET', `/${mine.bucket}`, [
      ['list-type', '2'],
      ['prefix', mine.prefix],
    ]);
    if (layout === 'bucket') {
      expect(listed.status, listed.body).toBe(200);
      expect(listed.body).toContain(ownKey);
    } else {
      expect(listed.status, listed.body).toBe(403);
    }
    const read = await signedS3(credentials, 'GET', `/${mine.bucket}/${ownKey}`);
    expect([read.status, read.body]).toEqual([200, 'a reads']);
  });

  test("dot segments in the object path never reach B's object", async () => {
    const climbs = [`/${mine.bucket}/${mine.prefix}docs/../../${theirKey}`, `/${mine.bucket}/${mine.prefix}../${theirKey}`];
    if (layout === 'bucket') climbs.push(`/${mine.bucket}/../${theirs.bucket}/${theirKey}`);
    for (const path of climbs) {
      const answer = await signedS3(credentials, 'GET', path);
      expect(answer.body, path).not.toContain('b only');
      expect(answer.status, path).not.toBe(200);
    }
  });

  test("B's versions, multipart uploads and the bucket configuration are out of reach, even of the own bucket", async () => {
    const multipart = await h.s3.initiateNewMultipartUpload(theirs.bucket, theirKey, {});
    try {
      // MinIO answers ListObjectVersions under s3:ListBucket: the own versions list, B's never.
      const versions = await signedS3(credentials, 'GET', `/${theirs.bucket}`, [['versions', ''], ['prefix', theirs.prefix]]);
      expect(versions.status, versions.body).toBe(403);
      expect(versions.body).not.toContain(theirKey);
      const reads: Array<[string, Array<[string, string]>]> = [
        ['uploads', [['uploads', '']]],
        ['uploads by prefix', [['uploads', ''], ['prefix', mine.prefix]]],
        ['policy', [['policy', '']]],
        ['versioning', [['versioning', '']]],
        ['lifecycle', [['lifecycle', '']]],
        ['notification', [['notification', '']]],
        ['replication', [['replication', '']]],
        ['encryption', [['encryption', '']]],
        ['object-lock', [['object-lock', '']]],
        ['tagging', [['tagging', '']]],
        ['acl', [['acl', '']]],
      ];
      for (const [label, query] of reads) {
        const answer = await signedS3(credentials, 'GET', `/${mine.bucket}`, query);
        expect(answer.status, `${label}: ${answer.body}`).toBe(403);
        expect(answer.body, label).not.toContain(theirKey);
      }
      const policy = JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { AWS: ['*'] }, Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${mine.bucket}/*`] }],
      });
      const writes: Array<[string, string, Array<[string, string]>, string]> = [
        ['put policy', 'PUT', [['policy', '']], policy],
        ['put versioning', 'PUT', [['versioning', '']], '<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>'],
        ['delete bucket', 'DELETE', [], ''],
        ['delete policy', 'DELETE', [['policy', '']], ''],
      ];
      for (const [label, method, query, body] of writes) {
        const answer = await signedS3(credentials, method, `/${mine.bucket}`, query, { body });
        expect(answer.status, `${label}: ${answer.body}`).toBe(403);
      }
      // Objects: tags, ACL, attributes, a copy of B's into A's place.
      for (const query of [[['tagging', '']], [['acl', '']], [['attributes', '']]] as Array<Array<[string, string]>>) {
        const answer = await signedS3(credentials, 'GET', `/${theirs.bucket}/${theirKey}`, query, { unsigned: { 'x-amz-object-attributes': 'ObjectSize' } });
        expect(answer.status, `${query[0]![0]}: ${answer.body}`).toBe(403);
      }
      const copied = await signedS3(credentials, 'PUT', `/${mine.bucket}/${mine.prefix}docs/copied.txt`, [], { unsigned: { 'x-amz-copy-source': `/${theirs.bucket}/${theirKey}` } });
      expect(copied.status, copied.body).toBe(403);
      expect((await h.s3.statObject(theirs.bucket, theirKey)).size).toBe(6);
    } finally {
      await h.s3.abortMultipartUpload(theirs.bucket, theirKey, multipart);
    }
  });

  test("a listing of B's prefix is refused, also by a prefix that climbs out of A's", async () => {
    const tries: Array<Array<[string, string]>> = [
      [['list-type', '2'], ['prefix', theirs.prefix]],
      [['list-type', '2'], ['prefix', `${mine.prefix}../${theirs.prefix}`]],
      [['prefix', theirs.prefix]],
    ];
    for (const query of tries) {
      const answer = await signedS3(credentials, 'GET', `/${theirs.bucket}`, query);
      expect(answer.body, JSON.stringify(query)).not.toContain(theirKey);
    }
  });

  // MinIO checks a policy's s3:prefix condition against the query and the headers alike and
  // passes when any value matches, while the listing uses the first query value: each of these
  // listed B's keys while the prefix layout granted ListBucket under an s3:prefix condition.
  test("neither a Prefix header naming A's prefix nor a repeated prefix lists B's keys or the whole bucket", async () => {
    const tries: Array<[Array<[string, string]>, Record<string, string>]> = [
      [[['list-type', '2'], ['prefix', theirs.prefix]], { Prefix: mine.prefix }],
      [[['list-type', '2']], { Prefix: mine.prefix }],
      [[['list-type', '2'], ['prefix', theirs.prefix], ['prefix', mine.prefix]], {}],
    ];
    for (const [query, unsigned] of tries) {
      const answer = await signedS3(credentials, 'GET', `/${theirs.bucket}`, query, { unsigned });
      expect(answer.body, JSON.stringify(query)).not.toContain(theirKey);
      expect(answer.status, JSON.stringify(query)).toBe(403);
    }
  });
});

describe("Redis: what a tenant's ACL user may not run", () => {
  let h: StorageHarness;
  let a: StorageTenant;
  let b: StorageTenant;
  let password: { username: string; password: string };
  const redisUrl = () => services().endpoints.redisUrl;

  beforeAll(async () => {
    h = await startStorageHarness('bucket');
    [a, b] = await Promise.all([createStorageTenant(h.admin, 'rev-ra'), createStorageTenant(h.admin, 'rev-rb')]);
    const issued = await new StorageClient(h.service.url, h.token(a.users.owner, a.tenantId, 'owner')).call('POST', '/storage/credentials', { kind: 'redis' });
    expect(issued.status).toBe(200);
    password = issued.body;
    await h.redis.set(`tenant:{${b.tenantId}}:app:k`, 'b secret');
    await h.redis.xadd(`tenant:{${b.tenantId}}:app:stream`, '*', 'f', 'v');
    await h.redis.call('XGROUP', 'CREATE', `tenant:{${b.tenantId}}:app:stream`, 'g', '0');
    await h.redis.set(`tenant:{${a.tenantId}}:platform:quota`, '1');
  });
  afterAll(() => h?.close());

  /** One command on a fresh connection as A's user: the error Redis answered, or null when it ran. */
  async function run(...command: string[]): Promise<string | null> {
    const connected = await connectAsTenant(redisUrl(), password);
    if (!('client' in connected)) throw new Error(`A's user cannot log in: ${connected.refused}`);
    try {
      await connected.client.call(command[0]!, ...command.slice(1));
      return null;
    } catch (error) {
      return (error as Error).message;
    } finally {
      connected.client.disconnect();
    }
  }

  test("commands that read, write or name B's keys and channels, the platform's keys, or server-wide state are refused with NOPERM", async () => {
    const own = `tenant:{${a.tenantId}}:app:`;
    const theirs = `tenant:{${b.tenantId}}:app:`;
    const setup = await connectAsTenant(redisUrl(), password);
    if (!('client' in setup)) throw new Error(setup.refused);
    await setup.client.set(`${own}k`, 'a');
    await setup.client.rpush(`${own}list`, 'x');
    await setup.client.sadd(`${own}set`, 'x');
    await setup.client.zadd(`${own}zset`, 1, 'x');
    await setup.client.geoadd(`${own}geo`, 0, 0, 'm');
    await setup.client.pfadd(`${own}hll`, 'x');
    setup.client.disconnect();

    const commands: string[][] = [
      ['GET', `${theirs}k`],
      ['OBJECT', 'ENCODING', `${theirs}k`],
      ['OBJECT', 'FREQ', `${theirs}k`],
      ['OBJECT', 'IDLETIME', `${theirs}k`],
      ['MEMORY', 'USAGE', `${theirs}k`],
      ['MEMORY', 'STATS'],
      ['MEMORY', 'DOCTOR'],
      ['DEBUG', 'OBJECT', `${theirs}k`],
      ['DUMP', `${theirs}k`],
      ['EXISTS', `${theirs}k`],
      ['TYPE', `${theirs}k`],
      ['TTL', `${theirs}k`],
      ['TOUCH', `${theirs}k`],
      ['LCS', `${own}k`, `${theirs}k`],
      ['COPY', `${own}k`, `${theirs}copy`],
      ['RENAME', `${own}k`, `${theirs}renamed`],
      ['MSET', `${own}m`, '1', `${theirs}m`, '2'],
      ['BITOP', 'OR', `${theirs}bits`, `${own}k`],
      ['SINTERSTORE', `${theirs}set`, `${own}set`],
      ['PFMERGE', `${theirs}hll`, `${own}hll`],
      ['LMOVE', `${own}list`, `${theirs}list`, 'LEFT', 'RIGHT'],
      ['ZUNIONSTORE', `${theirs}zset`, '1', `${own}zset`],
      ['GEORADIUS', `${own}geo`, '0', '0', '100', 'km', 'STORE', `${theirs}geo`],
      ['GEORADIUS', `${own}geo`, '0', '0', '100', 'km', 'STOREDIST', `${theirs}geo`],
      ['GEOSEARCHSTORE', `${theirs}geo`, `${own}geo`, 'FROMLONLAT', '0', '0', 'BYRADIUS', '100', 'km'],
      ['XREAD', 'STREAMS', `${theirs}stream`, '0'],
      ['XREADGROUP', 'GROUP', 'g', 'c', 'STREAMS', `${theirs}stream`, '>'],
      ['XINFO', 'STREAM', `${theirs}stream`],
      ['XINFO', 'GROUPS', `${theirs}stream`],
      ['WATCH', `${theirs}k`],
      ['GET', `tenant:{${a.tenantId}}:platform:quota`],
      ['INCR', `tenant:{${a.tenantId}}:platform:quota`],
      ['SORT', `${own}list`, 'BY', `${theirs}*`],
      ['SORT_RO', `${own}list`],
      ['EVAL', 'return 1', '0'],
      ['EVAL_RO', 'return 1', '0'],
      ['EVALSHA', 'e0e1f9fabfc9d4800c877a703b823ac0578ff8db', '0'],
      ['FCALL_RO', 'f', '0'],
      ['FUNCTION', 'LIST'],
      ['FUNCTION', 'DUMP'],
      ['SCRIPT', 'EXISTS', 'e0e1f9fabfc9d4800c877a703b823ac0578ff8db'],
      ['SCRIPT', 'KILL'],
      ['KEYS', '*'],
      ['SCAN', '0'],
      ['RANDOMKEY'],
      ['DBSIZE'],
      ['INFO'],
      ['INFO', 'keyspace'],
      ['INFO', 'clients'],
      ['SLOWLOG', 'GET'],
      ['LATENCY', 'LATEST'],
      ['LATENCY', 'HISTORY', 'command'],
      ['MONITOR'],
      ['CLIENT', 'LIST'],
      ['CLIENT', 'KILL', 'ID', '1'],
      ['CLIENT', 'KILL', 'USER', 'default'],
      ['CLIENT', 'NO-EVICT', 'ON'],
      ['CLIENT', 'PAUSE', '10'],
      ['CLIENT', 'UNBLOCK', '1'],
      ['CLIENT', 'TRACKING', 'ON', 'BCAST'],
      ['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', theirs],
      ['PUBSUB', 'CHANNELS'],
      ['PUBSUB', 'NUMSUB', `${theirs}ch`],
      ['PUBSUB', 'NUMPAT'],
      ['PUBSUB', 'SHARDCHANNELS'],
      ['PUBLISH', `${theirs}ch`, 'x'],
      ['SPUBLISH', `${theirs}ch`, 'x'],
      ['SUBSCRIBE', `${theirs}ch`],
      ['SSUBSCRIBE', `${theirs}ch`],
      ['PSUBSCRIBE', '*'],
      ['PSUBSCRIBE', `tenant:{*`],
      ['PSUBSCRIBE', `${own}*`.replace(':app:*', ':*')],
      ['SUBSCRIBE', `__keyspace@0__:${theirs}k`],
      ['PSUBSCRIBE', '__key*__:*'],
      ['MIGRATE', '127.0.0.1', '1', `${theirs}k`, '0', '1000'],
      ['MIGRATE', '127.0.0.1', '1', `${own}k`, '0', '1000'],
      ['RESTORE', `${own}restored`, '0', 'x'],
      ['SWAPDB', '0', '1'],
      ['SELECT', '1'],
      ['MOVE', `${own}k`, '1'],
      ['CONFIG', 'GET', 'requirepass'],
      ['CONFIG', 'SET', 'maxmemory', '1'],
      ['ACL', 'LOG'],
      ['ACL', 'LIST'],
      ['ACL', 'GETUSER', `tenant-${b.tenantId}`],
      ['BGSAVE'],
      ['LASTSAVE'],
      ['ROLE'],
      ['REPLICAOF', 'NO', 'ONE'],
      ['MODULE', 'LIST'],
      ['DEBUG', 'SLEEP', '0'],
      ['PFDEBUG', 'GETREG', `${own}hll`],
      ['PFSELFTEST'],
      ['OBJECT', 'ENCODING', `tenant:{${a.tenantId}}:platform:quota`],
    ];
    const ran: string[] = [];
    for (const command of commands) {
      const error = await run(...command);
      if (error === null || !/NOPERM|DEBUG command not allowed/.test(error)) ran.push(`${command.join(' ')} → ${error ?? 'ran'}`);
    }
    expect(ran).toEqual([]);
    expect(await h.redis.get(`${theirs}k`)).toBe('b secret');
    expect(await h.redis.get(`tenant:{${a.tenantId}}:platform:quota`)).toBe('1');
  });

  test('RESET and HELLO never leave the connection as another user (the default user has a password)', async () => {
    const connected = await connectAsTenant(redisUrl(), password);
    if (!('client' in connected)) throw new Error(connected.refused);
    const { client } = connected;
    try {
      await expect(client.call('HELLO', '2', 'AUTH', 'default', 'not-the-password')).rejects.toThrow(/WRONGPASS|NOPERM/);
      await expect(client.call('AUTH', `tenant-${b.tenantId}`, 'guess')).rejects.toThrow(/WRONGPASS/);
      expect(await client.call('RESET')).toBe('RESET');
      await expect(client.call('GET', `tenant:{${b.tenantId}}:app:k`)).rejects.toThrow(/NOAUTH/);
      await expect(client.call('GET', `tenant:{${a.tenantId}}:app:k`)).rejects.toThrow(/NOAUTH/);
    } finally {
      client.disconnect();
    }
  });
});

describe.each(['bucket', 'prefix'] as const)('uploads and files, %s layout: crafted requests', (layout: StorageLayout) => {
  let h: StorageHarness;
  let a: StorageTenant;
  let b: StorageTenant;
  const as = (tenant: StorageTenant, role: keyof StorageTenant['users']) => new StorageClient(h.service.url, h.token(tenant.users[role], tenant.tenantId, role));

  beforeAll(async () => {
    h = await startStorageHarness(layout);
    [a, b] = await Promise.all([createStorageTenant(h.admin, 'rev-ua'), createStorageTenant(h.admin, 'rev-ub')]);
  });
  afterAll(() => h?.close());

  async function started(client: StorageClient, content: Buffer, name = fileName('rev'), contentType = 'text/plain') {
    const reply = await client.startUpload({ bucket: 'docs', name, size: content.length, contentType, sha256: sha256Hex(content) });
    expect(reply.status, JSON.stringify(reply.body)).toBe(201);
    return reply.body as { upload: { id: string; expiresAt: string }; url: string; fields: Record<string, string> };
  }

  test('concurrent completes of one upload: exactly one file, the others 409, the bytes counted once', async () => {
    const member = as(a, 'member');
    const content = Buffer.from(`raced ${hex(8)}`);
    const before = await committedBytes(h.admin, a.tenantId);
    const upload = await started(member, content);
    expect((await postForm(upload.url, upload.fields, content)).status).toBe(204);
    const replies = await Promise.all(Array.from({ length: 8 }, () => member.complete(upload.upload.id)));
    expect(replies.filter((reply) => reply.status === 200)).toHaveLength(1);
    for (const reply of replies.filter((one) => one.status !== 200)) expectError(reply, 409, 'upload_already_completed');
    expect(await committedBytes(h.admin, a.tenantId)).toBe(before + content.length);
    const { rows } = await h.admin.query('SELECT count(*)::int AS files FROM file_uploads u JOIN files f ON f.id = u.file_id WHERE u.id = $1', [upload.upload.id]);
    expect(rows[0].files).toBe(1);
  });

  test("B's ids in every route: complete, meta, download and delete answer 404 and change nothing; a guest of A can neither complete nor delete", async () => {
    const content = Buffer.from(`b file ${hex(8)}`);
    const bMember = as(b, 'member');
    const bUpload = await started(bMember, content);
    expect((await postForm(bUpload.url, bUpload.fields, content)).status).toBe(204);
    const bPending = await started(bMember, Buffer.from('pending'));
    const bFile = (await bMember.complete(bUpload.upload.id)).body.file as { id: string };
    for (const role of ['owner', 'admin', 'member'] as const) {
      const client = as(a, role);
      expectError(await client.complete(bPending.upload.id), 404, 'upload_not_found');
      expectError(await client.call('GET', `/storage/files/${bFile.id}`), 404, 'file_not_found');
      expectError(await client.call('GET', `/storage/files/${bFile.id}/meta`), 404, 'file_not_found');
      expectError(await client.call('DELETE', `/storage/files/${bFile.id}`), 404, 'file_not_found');
    }
    // A's token with B's tenant named by header: refused before any lookup.
    const crossed = await fetch(`${h.service.url}/storage/files/${bFile.id}/meta`, { headers: { Authorization: `Bearer ${h.token(a.users.owner, a.tenantId, 'owner')}`, 'X-Tenant-Slug': b.slug } });
    expect(crossed.status).toBe(403);
    const aUpload = await started(as(a, 'member'), content);
    expectError(await as(a, 'guest').complete(aUpload.upload.id), 403, 'forbidden');
    expect((await as(b, 'guest').call('GET', `/storage/files/${bFile.id}/meta`)).status).toBe(200);
  });

  test('a read-only token of the owner rotates no Redis password, issues no S3 credentials, completes and deletes nothing', async () => {
    const content = Buffer.from(`ro ${hex(8)}`);
    const member = as(a, 'member');
    const upload = await started(member, content);
    expect((await postForm(upload.url, upload.fields, content)).status).toBe(204);
    const readOnly = new StorageClient(h.service.url, h.token(a.users.owner, a.tenantId, 'owner', { readOnly: true }));
    for (const kind of ['redis', 's3']) expectError(await readOnly.call('POST', '/storage/credentials', { kind }), 403, 'forbidden');
    expectError(await readOnly.complete(upload.upload.id), 403, 'forbidden');
    const file = (await member.complete(upload.upload.id)).body.file as { id: string };
    expectError(await readOnly.call('DELETE', `/storage/files/${file.id}`), 403, 'forbidden');
    expect((await readOnly.call('GET', `/storage/files/${file.id}/meta`)).status).toBe(200);
  });

  test('names a header could misread reach the redirect and the saved name encoded: quotes, semicolons, percent, a right-to-left override, a CR is refused', async () => {
    const member = as(a, 'member');
    for (const name of [`q/"a";b=c%41\u202Etxt.exe`, `q/${'é'.repeat(120)}/${'ж'.repeat(120)}.txt`, 'q/Ω; filename="evil.html"']) {
      const content = Buffer.from(`named ${hex(4)}`);
      const upload = await started(member, content, name);
      const posted = await postForm(upload.url, upload.fields, content);
      expect(posted.status, `${name}: ${posted.text}`).toBe(204);
      const file = (await member.complete(upload.upload.id)).body.file as { id: string };
      const redirect = await member.call('GET', `/storage/files/${file.id}`);
      expect(redirect.status).toBe(302);
      const location = redirect.response.headers.get('location')!;
      expect(location).not.toMatch(/[\r\n"]/);
      const downloaded = await fetch(location);
      expect(downloaded.status).toBe(200);
      const disposition = downloaded.headers.get('content-disposition')!;
      // One attachment, one ASCII filename without a quote inside it, the exact name only as filename*.
      expect(disposition).toMatch(/^attachment; filename="[ -!#-[\]-~]*"; filename\*=UTF-8''[A-Za-z0-9%!._~-]*$/);
      expect(decodeURIComponent(disposition.split("UTF-8''")[1]!)).toBe(name.slice(name.lastIndexOf('/') + 1));
    }
    for (const name of ['q/a\rb', 'q/a\nContent-Type: text/html', 'q/\u0085next']) {
      const reply = await member.startUpload({ bucket: 'docs', name, size: 1, contentType: 'text/plain', sha256: sha256Hex('x') });
      if (name.includes('\u0085')) continue; // NEL is not a control character in the rules (U+0000–U+001F, U+007F)
      expectError(reply, 422, 'validation_failed');
    }
  });
});

describe.each(['bucket', 'prefix'] as const)('the presigned POST, %s layout: fields the policy does not name', (layout: StorageLayout) => {
  let h: StorageHarness;
  let a: StorageTenant;
  beforeAll(async () => {
    h = await startStorageHarness(layout);
    a = await createStorageTenant(h.admin, 'rev-post');
  });
  afterAll(() => h?.close());

  test('each form field the policy does not name (metadata, headers to serve, redirects, ACL, tags) is refused by MinIO', async () => {
    const member = new StorageClient(h.service.url, h.token(a.users.member, a.tenantId, 'member'));
    const extras: Record<string, string> = {
      'Content-Encoding': 'gzip',
      'Cache-Control': 'public, max-age=31536000',
      'Content-Disposition': 'inline',
      'Content-Language': 'xx',
      Expires: 'Thu, 01 Dec 2094 16:00:00 GMT',
      'x-amz-meta-evil': '1',
      'x-amz-tagging': '<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>',
      'x-amz-website-redirect-location': 'https://evil.example/',
      success_action_redirect: 'https://evil.example/landing',
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      acl: 'public-read',
    };
    const outcome: Record<string, string> = {};
    for (const [field, value] of Object.entries(extras)) {
      const content = Buffer.from(`extra ${field} ${hex(4)}`);
      const name = fileName('extra');
      const reply = await member.startUpload({ bucket: 'docs', name, size: content.length, contentType: 'text/plain', sha256: sha256Hex(content) });
      const form = new FormData();
      for (const [key, fieldValue] of Object.entries({ ...reply.body.fields, [field]: value })) form.append(key, fieldValue as string);
      form.append('file', new Blob([content]), 'x.bin');
      const posted = await fetch(reply.body.url, { method: 'POST', body: form, redirect: 'manual' });
      const text = await posted.text();
      if (posted.status >= 400) {
        outcome[field] = `refused ${posted.status}`;
        continue;
      }
      const location = tenantStorageLocation(a.tenantId, { layout, sharedBucket: h.sharedBucket });
      const stat = await h.s3.statObject(location.bucket, objectKey(location, 'docs', name));
      const stored = JSON.stringify(stat.metaData);
      outcome[field] = `accepted ${posted.status} ${posted.headers.get('location') ?? ''} ${stored} ${text.slice(0, 80)}`;
    }
    for (const [field, result] of Object.entries(outcome)) expect(result, field).toMatch(/^refused/);
  });
});

describe('the S3 host of the edge: request targets and framing a proxy could get wrong', () => {
  let edge: EdgeHarness;
  let echoEdge: { url: string };
  const S3_HOST = `s3.${BASE_DOMAIN}`;

  beforeAll(async () => {
    edge = await startEdgeHarness({});
    echoEdge = await edge.startAnotherEdge({ S3_UPSTREAM: edge.echoAddress });
  }, 120_000);
  afterAll(() => edge?.stop());

  test('an absolute-form target naming another host is no proxy to it: a foreign host reaches no upstream, the S3 host gets a path only', async () => {
    for (const line of ['GET http://169.254.169.254/latest/meta-data/ HTTP/1.1', 'GET http://internal-service:8080/admin HTTP/1.1']) {
      const answer = await sendRaw(echoEdge.url, `${line}\r\nHost: ${S3_HOST}\r\nConnection: close\r\n\r\n`);
      expect(answer.headers['x-upstream'], line).toBeUndefined();
      expect(answer.status, line).toBe(404);
    }
    // The S3 host named in the request line wins over Host for routing; the upstream is still the S3 one, given the path.
    const answer = await sendRaw(echoEdge.url, `GET http://${S3_HOST}/bucket/key HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n`);
    expect(answer.headers['x-upstream']).toBe('echo');
    expect((answer.json as Echo).url).toBe('/bucket/key');
  });

  test('Transfer-Encoding with Content-Length is refused or re-framed: the S3 upstream never sees a request hidden in a body', async () => {
    const smuggled = [
      'POST /bucket/key HTTP/1.1',
      `Host: ${S3_HOST}`,
      'Content-Length: 6',
      'Transfer-Encoding: chunked',
      '',
      '0',
      '',
      'GET /bucket/smuggled HTTP/1.1',
      `Host: ${S3_HOST}`,
      '',
      '',
    ].join('\r\n');
    const answer = await sendRaw(echoEdge.url, smuggled);
    expect([answer.status, answer.headers['x-upstream']]).toEqual([400, undefined]);
    // Two Content-Lengths that disagree: refused.
    const doubled = await sendRaw(echoEdge.url, `POST /bucket/key HTTP/1.1\r\nHost: ${S3_HOST}\r\nContent-Length: 1\r\nContent-Length: 40\r\n\r\nx`);
    expect(doubled.status).toBe(400);
  });
});
