// npm run bench:edge — what resolving the tenant at the edge costs.
//
// One nginx worker each, wrk on loopback, 10,000 tenants known, requests spread at random
// over them by X-Tenant-Slug:
//   (a) plain proxy: the same Debian nginx, no Lua, proxying to the echo upstream the edge
//       tests use, with the edge's proxy headers and JSON access log, so the difference is
//       the resolver alone;
//   (b) the edge with a warm tenant cache, to the same upstream;
//   (c) the edge from a cold cache (misses go to the real resolver service and Postgres),
//       then the same edge warm.
//   (a') and (b'): (a) and (b) in front of an nginx that answers a fixed body instead. Nothing
//       behind the proxy costs anything then, so b'/a' is the edge's own CPU against a bare
//       proxy: stricter than any real upstream (Hasura does far more per request than either).
// (a), (b), (a') and (b') alternate for BENCH_ROUNDS rounds and the medians are compared,
// so drift on a busy machine hits all alike. Then the shared dict's memory is measured with
// 100,000 tenants cached.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import getPort from 'get-port';
import pg from 'pg';
import { z } from 'zod';
import { startEdge, type EdgeInstance } from '../scripts/native/edge.js';
import { findBinary } from '../scripts/native/binaries.js';
import { launch, stopProcess, waitUntilReady, type NativeProcess } from '../scripts/native/services.js';
import { readConfig } from '../services/shared/src/config.js';
import { startBenchDatabase } from './lib/database.js';
import { startEdgeBenchParts } from './lib/edge-parts.js';
import { formatTable, printComparison, writeResults, type ComparisonCase } from './lib/report.js';

const config = readConfig(
  z.object({
    BENCH_TENANTS: z.coerce.number().int().min(10).default(10_000),
    BENCH_MEMORY_TENANTS: z.coerce.number().int().min(10).default(100_000),
    BENCH_SECONDS: z.coerce.number().int().min(1).max(60).default(8),
    BENCH_CONNECTIONS: z.coerce.number().int().min(1).max(512).default(32),
    BENCH_ROUNDS: z.coerce.number().int().min(1).max(15).default(3),
  }),
);
const exec = promisify(execFile);

interface WrkResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  failures: number;
}

/** A Lua script for wrk: random tenants, and a JSON summary that we parse. */
const WRK_SCRIPT = `
local tenants = tonumber(os.getenv("BENCH_TENANTS"))
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/storage/bench", { ["X-Tenant-Slug"] = "bench-" .. math.random(tenants) })
end
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"failures":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, errors.connect + errors.read + errors.write + errors.timeout + errors.status,
    latency:percentile(50), latency:percentile(99)))
end
`;

async function wrk(url: string, scriptFile: string): Promise<WrkResult> {
  const { stdout } = await exec(
    findBinary('wrk'),
    ['-t1', `-c${config.BENCH_CONNECTIONS}`, `-d${config.BENCH_SECONDS}s`, '--timeout', '5s', '-s', scriptFile, url],
    { env: { ...process.env, BENCH_TENANTS: String(config.BENCH_TENANTS) }, timeout: (config.BENCH_SECONDS + 30) * 1000 },
  );
  const line = stdout.split('\n').find((candidate) => candidate.startsWith('RESULT '));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  const result = JSON.parse(line.slice('RESULT '.length)) as { requests: number; duration_us: number; failures: number; p50_us: number; p99_us: number };
  return {
    requestsPerSecond: result.requests / (result.duration_us / 1e6),
    p50Ms: result.p50_us / 1000,
    p99Ms: result.p99_us / 1000,
    failures: result.failures,
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** Each figure's median over the rounds. */
function medianResult(rounds: WrkResult[]): WrkResult {
  return {
    requestsPerSecond: median(rounds.map((round) => round.requestsPerSecond)),
    p50Ms: median(rounds.map((round) => round.p50Ms)),
    p99Ms: median(rounds.map((round) => round.p99Ms)),
    failures: rounds.reduce((sum, round) => sum + round.failures, 0),
  };
}

/** A plain Debian nginx (no Lua) from a server block: the upstream and the plain proxy. */
async function startPlainNginx(name: string, root: string, serverBlock: string): Promise<NativeProcess & { url: string }> {
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const port = await getPort();
  const conf = `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  log_format plain_json escape=json
    '{"time":"$time_iso8601","request_id":"$request_id","tenant_id":"","route":"storage","method":"$request_method",'
    '"uri":"$uri","status":$status,"latency_s":$request_time,"upstream_s":"$upstream_response_time","error":""}';
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  server { listen 127.0.0.1:${port}; ${serverBlock} }
}`;
  await writeFile(path.join(dir, 'nginx.conf'), conf);
  const nginx = launch(name, findBinary('nginx'), ['-p', dir, '-c', path.join(dir, 'nginx.conf')], {
    port,
    dataDir: dir,
    logFile: path.join(dir, 'nginx.out'),
    detached: false,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntilReady(name, nginx.child, path.join(dir, 'error.log'), async () => {
    if (!(await fetch(`${url}/ready`)).ok) throw new Error('not ready');
  });
  return { ...nginx, url };
}

/** Sends one request per tenant slug, `concurrency` at a time. */
async function touchTenants(url: string, count: number, concurrency = 64): Promise<void> {
  let next = 1;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next <= count) {
        const index = next++;
        const response = await fetch(`${url}/storage/bench`, { headers: { 'X-Tenant-Slug': `bench-${index}` } });
        await response.arrayBuffer();
        if (response.status !== 200) throw new Error(`tenant bench-${index}: ${response.status}`);
      }
    }),
  );
}

async function main(): Promise<void> {
  const started = performance.now();
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    const database = await startBenchDatabase();
    cleanups.push(() => database.stop());
    const admin = new pg.Client({ connectionString: database.urls.platform_admin });
    await admin.connect();
    await admin.query(
      `INSERT INTO tenants (slug, name, plan_id) SELECT 'bench-' || n, 'Bench ' || n, 'enterprise' FROM generate_series(1, $1) AS n`,
      [Math.max(config.BENCH_TENANTS, config.BENCH_MEMORY_TENANTS)],
    );
    await admin.end();
    console.log(`loaded ${Math.max(config.BENCH_TENANTS, config.BENCH_MEMORY_TENANTS).toLocaleString('en-US')} tenants (${database.source} Postgres)`);

    const parts = await startEdgeBenchParts(database.urls.app_service, cleanups);

    const root = await mkdtemp(path.join(os.tmpdir(), 'tenantry-bench-edge-'));
    await import('node:fs/promises').then((fs) => fs.chmod(root, 0o755));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const processes: NativeProcess[] = [];
    cleanups.push(() => Promise.all(processes.map((child) => stopProcess(child.pid))));

    const echoAddress = parts.echoAddress;
    const fixedBody = await startPlainNginx('fixed-body', root, `access_log off; location / { default_type application/json; return 200 '{"ok":true}'; }`);
    processes.push(fixedBody);
    const fixedBodyAddress = new URL(fixedBody.url).host;

    const startPlainProxy = async (name: string, upstreamAddress: string) => {
      const proxy = await startPlainNginx(
        name,
        root,
        `access_log ${root}/${name}/access.log plain_json;
         location = /ready { return 200; }
         location / {
           proxy_http_version 1.1;
           proxy_set_header Host $host;
           proxy_set_header X-Forwarded-For $remote_addr;
           proxy_set_header X-Forwarded-Proto $scheme;
           proxy_set_header Upgrade $http_upgrade;
           proxy_set_header Connection $connection_upgrade;
           proxy_set_header X-Request-Id $request_id;
           proxy_pass http://bench_upstream;
         }
       }
       upstream bench_upstream { server ${upstreamAddress}; keepalive 64;`,
      );
      processes.push(proxy);
      return proxy;
    };
    const plain = await startPlainProxy('plain-proxy', echoAddress);
    const plainFixed = await startPlainProxy('plain-proxy-fixed-body', fixedBodyAddress);

    let edgeGeneration = 0;
    const freshEdge = async (upstreamAddress: string): Promise<EdgeInstance> => {
      edgeGeneration += 1;
      const env = {
        ...parts.edgeEnv(upstreamAddress),
        EDGE_PORT: String(await getPort()),
        EDGE_WORKER_PROCESSES: '1',
        EDGE_TENANT_CACHE_SIZE: '256m',
      };
      const edge = await startEdge({ env, runtimeDir: path.join(root, `edge-${edgeGeneration}`), detached: false });
      processes.push(edge);
      return edge;
    };
    const scriptFile = path.join(root, 'random-tenant.lua');
    await writeFile(scriptFile, WRK_SCRIPT);

    let edge = await freshEdge(echoAddress);
    const edgeFixed = await freshEdge(fixedBodyAddress);
    await touchTenants(edge.url, config.BENCH_TENANTS);
    await touchTenants(edgeFixed.url, config.BENCH_TENANTS);
    const alternating = [plain, edge, plainFixed, edgeFixed];
    // Warm-ups settle connection pools and the JIT of every party before measuring.
    for (const target of alternating) await wrk(target.url, scriptFile);
    const rounds: WrkResult[][] = alternating.map(() => []);
    for (let round = 0; round < config.BENCH_ROUNDS; round += 1) {
      for (const [index, target] of alternating.entries()) rounds[index]!.push(await wrk(target.url, scriptFile));
    }
    const [plainResult, warmResult, plainFixedResult, warmFixedResult] = rounds.map(medianResult) as [WrkResult, WrkResult, WrkResult, WrkResult];
    await stopProcess(edgeFixed.pid);

    await stopProcess(edge.pid);
    edge = await freshEdge(echoAddress);
    const coldResult = await wrk(edge.url, scriptFile);
    const coldThenWarmResult = await wrk(edge.url, scriptFile);

    const table = [
      ['(a) plain proxy', plainResult],
      ['(b) edge, warm cache', warmResult],
      ['(c) edge, cold cache', coldResult],
      ['(c) edge, then warm', coldThenWarmResult],
      ["(a') plain proxy, fixed-body upstream", plainFixedResult],
      ["(b') edge, warm, fixed-body upstream", warmFixedResult],
    ] as const;
    console.log(
      `\nwrk: 1 thread, ${config.BENCH_CONNECTIONS} connections, ${config.BENCH_SECONDS} s per run, ` +
        `${config.BENCH_TENANTS.toLocaleString('en-US')} tenants at random; (a), (b), (a') and (b') medians of ${config.BENCH_ROUNDS} alternating rounds\n`,
    );
    console.log(
      formatTable(
        ['case', 'requests/s', 'p50 ms', 'p99 ms', 'failed'],
        table.map(([name, result]) => [
          name,
          Math.round(result.requestsPerSecond).toLocaleString('en-US'),
          result.p50Ms.toFixed(3),
          result.p99Ms.toFixed(3),
          String(result.failures),
        ]),
      ),
    );
    const failed = table.filter(([, result]) => result.failures > 0);
    if (failed.length > 0) throw new Error(`requests failed in: ${failed.map(([name]) => name).join(', ')}`);

    const cases: ComparisonCase[] = [
      { case: 'throughput b/a (warm)', baseline: plainResult.requestsPerSecond, candidate: warmResult.requestsPerSecond, unit: 'requests/s', higherIsBetter: true, goal: 0.85 },
      { case: 'throughput c/a (cold)', baseline: plainResult.requestsPerSecond, candidate: coldResult.requestsPerSecond, unit: 'requests/s', higherIsBetter: true },
      { case: 'throughput c/a (then warm)', baseline: plainResult.requestsPerSecond, candidate: coldThenWarmResult.requestsPerSecond, unit: 'requests/s', higherIsBetter: true },
      { case: 'p50 latency b/a (warm)', baseline: plainResult.p50Ms, candidate: warmResult.p50Ms, unit: 'ms', higherIsBetter: false },
      { case: 'p99 latency b/a (warm)', baseline: plainResult.p99Ms, candidate: warmResult.p99Ms, unit: 'ms', higherIsBetter: false },
      {
        case: "throughput b'/a' (warm, fixed-body upstream)",
        baseline: plainFixedResult.requestsPerSecond,
        candidate: warmFixedResult.requestsPerSecond,
        unit: 'requests/s',
        higherIsBetter: true,
      },
      { case: "p99 latency b'/a' (warm, fixed-body upstream)", baseline: plainFixedResult.p99Ms, candidate: warmFixedResult.p99Ms, unit: 'ms', higherIsBetter: false },
    ];
    const verdicts = printComparison('the edge against a plain proxy (candidate ÷ baseline)', cases);
    const addedP99 = warmResult.p99Ms - plainResult.p99Ms;
    const p99Met = addedP99 <= 0.3;
    console.log(`p99 added by the edge (warm): ${addedP99.toFixed(3)} ms (goal <= 0.300 ms: ${p99Met ? 'met' : 'MISSED'})`);
    const addedP99FixedBody = warmFixedResult.p99Ms - plainFixedResult.p99Ms;
    console.log(`p99 added by the edge in front of the fixed-body upstream: ${addedP99FixedBody.toFixed(3)} ms`);

    // Memory: every one of BENCH_MEMORY_TENANTS through a fresh edge, then the dict's use.
    await stopProcess(edge.pid);
    edge = await freshEdge(echoAddress);
    const before = (await (await fetch(`${edge.url}/_edge/stats`)).json()) as { tenant_cache: { capacity_bytes: number; free_bytes: number } };
    await touchTenants(edge.url, config.BENCH_MEMORY_TENANTS);
    const after = (await (await fetch(`${edge.url}/_edge/stats`)).json()) as { tenant_cache: { capacity_bytes: number; free_bytes: number; keys: number } };
    const usedBytes = before.tenant_cache.free_bytes - after.tenant_cache.free_bytes;
    const memory = {
      tenants: config.BENCH_MEMORY_TENANTS,
      keys: after.tenant_cache.keys,
      used_bytes: usedBytes,
      bytes_per_tenant: Math.round(usedBytes / config.BENCH_MEMORY_TENANTS),
      dict_capacity_bytes: after.tenant_cache.capacity_bytes,
    };
    console.log(
      `\ntenant cache for ${memory.tenants.toLocaleString('en-US')} tenants: ${(usedBytes / 2 ** 20).toFixed(1)} MiB in ${memory.keys.toLocaleString('en-US')} keys ` +
        `(${memory.bytes_per_tenant} bytes per tenant, slug and id keys)`,
    );

    const file = await writeResults('edge', cases, {
      runs: Object.fromEntries(table.map(([name, result]) => [name, result])),
      rounds: { plain: rounds[0], warm: rounds[1], plain_fixed_body: rounds[2], warm_fixed_body: rounds[3] },
      p99_added_ms: Number(addedP99.toFixed(3)),
      p99_added_fixed_body_ms: Number(addedP99FixedBody.toFixed(3)),
      p99_goal_met: p99Met,
      memory,
      config,
    });
    console.log(`\nwrote ${path.relative(process.cwd(), file)} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    if (verdicts.some((verdict) => !verdict.met) || !p99Met) console.log('(goals are measurements: the run still succeeds)');
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: Error) => console.error(`cleanup failed: ${error.message}`));
  }
}

main().catch((error: Error) => {
  console.error(`bench:edge failed: ${error.message}`);
  process.exit(1);
});
