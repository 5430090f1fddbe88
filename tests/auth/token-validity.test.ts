/**
 * Issue 13, point 5: the edge refuses a member's token whose iat <= floor(tokens_valid_after),
 * so a token minted in the same second as a demotion — before it — no longer passes. The other
 * half is the auth service's: a token it mints legitimately, right after a membership change,
 * must never fall under that rule, so every path that mints a member token waits for the next
 * second when it has to.
 */
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { memberTokenState } from '../../services/resolver/src/resolve.js';
import { TokenIssuer } from '../../services/auth/src/tokens.js';
import { send, startEdgeHarness, type EdgeHarness } from '../edge/harness.js';
import { AUDIENCE, bearer, decode, ISSUER, MailSink, PASSWORD, setPlan, signUp, startHarness, uniqueEmail, type Harness } from './harness.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const iatOf = (token: string) => decode(token).iat as number;

let h: Harness;
let edge: EdgeHarness;
beforeAll(async () => {
  [h, edge] = await Promise.all([startHarness(), startEdgeHarness()]);
});
afterAll(async () => {
  await Promise.all([h?.close(), edge?.stop()]);
});

/** floor(tokens_valid_after) as the edge sees it, through the resolver's own query. */
async function validAfter(tenantId: string, userId: string): Promise<number> {
  const state = await memberTokenState(h.pool, tenantId, userId);
  if (!state) throw new Error('not a member');
  return state.tokens_valid_after;
}

/** A request through the real edge, as the member's client would send it. */
const throughEdge = (slug: string, token: string) => send(edge.edge.url, '/storage/x', { headers: { 'X-Tenant-Slug': slug, Authorization: `Bearer ${token}` } });

/** Waits until the wall clock is early in a second, so what follows fits in that second. */
async function startOfSecond(): Promise<void> {
  const into = Date.now() % 1000;
  if (into > 150) await sleep(1000 - into + 5);
}

async function memberToken(userToken: string, slug: string): Promise<string> {
  return (await request(h.app).post('/auth/switch-tenant').set(bearer(userToken)).send({ tenant: slug }).expect(200)).body.accessToken as string;
}

async function tenantWithAdmin(label: string) {
  const owner = await signUp(h.app, label);
  await setPlan(h, owner.tenantId);
  const admin = await signUp(h.app, `${label}adm`, false);
  await h.admin.query("INSERT INTO tenant_members (tenant_id, user_id, role) VALUES ($1, $2, 'admin')", [owner.tenantId, admin.userId]);
  return { owner, admin, tenantId: owner.tenantId!, slug: owner.slug! };
}

const demote = (tenantId: string, userId: string, role: string) =>
  h.admin.query('UPDATE tenant_members SET role = $3 WHERE tenant_id = $1 AND user_id = $2', [tenantId, userId, role]);

describe('a demotion in the same second as a token', () => {
  test('the token minted before the demotion, in its second, is refused at the edge; the one minted right after passes', async () => {
    const { admin, tenantId, slug } = await tenantWithAdmin('tvsame');
    let before = '';
    for (let attempt = 0; ; attempt += 1) {
      await startOfSecond();
      before = await memberToken(admin.accessToken, slug);
      await demote(tenantId, admin.userId, attempt % 2 === 0 ? 'guest' : 'member');
      if (iatOf(before) === (await validAfter(tenantId, admin.userId))) break;
      if (attempt === 4) throw new Error('could not mint and demote within one second');
    }
    expect((decode(before)['https://hasura.io/jwt/claims'] as Record<string, unknown>)['x-hasura-default-role']).toBe('tenant_admin');
    // The edge caches a member's answer for a few seconds: it must come to refuse the old token.
    let refused: Awaited<ReturnType<typeof throughEdge>> | undefined;
    for (const started = Date.now(); Date.now() - started < 6_000; await sleep(200)) {
      const answer = await throughEdge(slug, before);
      if (answer.status === 401) {
        refused = answer;
        break;
      }
    }
    expect(refused?.json?.error?.code).toBe('token_revoked');

    const after = await memberToken(admin.accessToken, slug);
    expect(iatOf(after)).toBeGreaterThan(await validAfter(tenantId, admin.userId));
    expect((await throughEdge(slug, after)).status).toBe(200);
  });
});

describe('every token the auth service mints right after a membership change is newer than it', () => {
  test('signup: the owner membership and its first token', async () => {
    await startOfSecond();
    const owner = await signUp(h.app, 'tvsignup');
    await setPlan(h, owner.tenantId);
    expect(iatOf(owner.accessToken)).toBeGreaterThan(await validAfter(owner.tenantId!, owner.userId));
    expect((await throughEdge(owner.slug!, owner.accessToken)).status).toBe(200);
  });

  test('switch-tenant, refresh, login and API-key exchange right after a role change', async () => {
    const { owner, admin, tenantId } = await tenantWithAdmin('tvpaths');
    const key = await request(h.app).post('/auth/api-keys').set(bearer(owner.accessToken)).send({ name: 'ci', role: 'member' }).expect(201);
    const login = await request(h.app).post('/auth/login').send({ email: admin.email, password: PASSWORD, tenant: owner.slug }).expect(200);
    let refreshToken = login.body.refreshToken as string;
    const mints: Array<[string, string, () => Promise<string>]> = [
      ['switch-tenant', admin.userId, () => memberToken(admin.accessToken, owner.slug!)],
      [
        'refresh',
        admin.userId,
        async () => {
          const answer = await request(h.app).post('/auth/refresh').send({ refreshToken }).expect(200);
          refreshToken = answer.body.refreshToken as string;
          return answer.body.accessToken as string;
        },
      ],
      ['login', admin.userId, async () => (await request(h.app).post('/auth/login').send({ email: admin.email, password: PASSWORD, tenant: owner.slug }).expect(200)).body.accessToken],
      ['api-key exchange', owner.userId, async () => (await request(h.app).post('/auth/token').send({ apiKey: key.body.key }).expect(200)).body.accessToken],
    ];
    for (const [path, userId, mint] of mints) {
      await startOfSecond();
      // Toggling the extra grants stamps tokens_valid_after like a role change does.
      await h.admin.query("UPDATE tenant_members SET permissions = CASE WHEN permissions = '{}' THEN '{projects:read}'::text[] ELSE '{}' END WHERE tenant_id = $1 AND user_id = $2", [tenantId, userId]);
      const token = await mint();
      expect(iatOf(token), path).toBeGreaterThan(await validAfter(tenantId, userId));
    }
  });

  test('staff impersonation right after the member was demoted', async () => {
    const { admin, tenantId } = await tenantWithAdmin('tvimp');
    const staff = await signUp(h.app, 'tvstaff', false);
    await h.admin.query('UPDATE users SET is_staff = true WHERE id = $1', [staff.userId]);
    await startOfSecond();
    await demote(tenantId, admin.userId, 'member');
    const answer = await request(h.app)
      .post('/auth/staff/impersonate')
      .set(bearer(staff.accessToken))
      .send({ tenantId, userId: admin.userId, reason: 'support ticket: demotion check' })
      .expect(200);
    expect(iatOf(answer.body.accessToken)).toBeGreaterThan(await validAfter(tenantId, admin.userId));
    expect(answer.body.role).toBe('member');
  });

  test('accepting an invitation: the new membership and its first token', async () => {
    const owner = await signUp(h.app, 'tvinv');
    await setPlan(h, owner.tenantId);
    const email = uniqueEmail('tvinvitee');
    await request(h.app).post('/auth/invitations').set(bearer(owner.accessToken)).send({ email, role: 'member' }).expect(201);
    const token = MailSink.token(await h.mail.waitFor(email, /invited/));
    await startOfSecond();
    const accepted = await request(h.app).post('/auth/invitations/accept').send({ token, password: PASSWORD }).expect(200);
    const userId = decode(accepted.body.accessToken).sub as string;
    expect(iatOf(accepted.body.accessToken)).toBeGreaterThan(await validAfter(owner.tenantId!, userId));
  });
});

describe('TokenIssuer.signFresh', () => {
  const issuer = () => new TokenIssuer({ keys: h.deps.keys, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 60 });

  test('waits for the next second and reads again when the state was stamped in the current one', async () => {
    const userId = crypto.randomUUID();
    const tenantId = crypto.randomUUID();
    await startOfSecond();
    const stampedNow = new Date();
    let reads = 0;
    const started = Date.now();
    const { token, state } = await issuer().signFresh(async () => {
      reads += 1;
      return { subject: { userId, tenant: { id: tenantId, role: 'member' as const } }, validAfter: reads === 1 ? stampedNow : new Date(stampedNow.getTime() - 5000) };
    });
    expect(reads).toBe(2);
    expect(state.subject.userId).toBe(userId);
    expect(iatOf(token)).toBeGreaterThan(Math.floor(stampedNow.getTime() / 1000));
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  test('signs at once when the state is older than this second, and for no tenant at all', async () => {
    const started = Date.now();
    const old = await issuer().signFresh(async () => ({ subject: { userId: crypto.randomUUID(), tenant: null }, validAfter: null }));
    const stale = await issuer().signFresh(async () => ({
      subject: { userId: crypto.randomUUID(), tenant: { id: crypto.randomUUID(), role: 'guest' as const } },
      validAfter: new Date(Date.now() - 2_000),
    }));
    expect(Date.now() - started).toBeLessThan(200);
    expect(iatOf(old.token)).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    expect(iatOf(stale.token)).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  });
});
