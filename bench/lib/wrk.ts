import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { findBinary } from '../../scripts/native/binaries.js';

const exec = promisify(execFile);

export interface WrkRun {
  requests: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Connect, read, write and timeout errors. */
  socketErrors: number;
  /** Answers outside 2xx/3xx (wrk's "Non-2xx or 3xx responses"). */
  non2xx: number;
}

/**
 * The `done` callback every wrk script here ends with: one JSON line that runWrk parses, so
 * no one scrapes wrk's human-readable summary.
 */
export const WRK_DONE_CALLBACK = `
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"socket_errors":%d,"non_2xx":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, errors.connect + errors.read + errors.write + errors.timeout, errors.status,
    latency:percentile(50), latency:percentile(99)))
end
`;

/** One wrk run (1 thread) with a script that ends in WRK_DONE_CALLBACK. */
export async function runWrk(
  url: string,
  scriptFile: string,
  { connections, seconds, env = {} }: { connections: number; seconds: number; env?: Record<string, string> },
): Promise<WrkRun> {
  const { stdout } = await exec(
    findBinary('wrk'),
    ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', scriptFile, url],
    { env: { ...process.env, ...env }, timeout: (seconds + 30) * 1000, maxBuffer: 16 * 2 ** 20 },
  );
  const line = stdout.split('\n').find((candidate) => candidate.startsWith('RESULT '));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  const result = JSON.parse(line.slice('RESULT '.length)) as {
    requests: number;
    duration_us: number;
    socket_errors: number;
    non_2xx: number;
    p50_us: number;
    p99_us: number;
  };
  return {
    requests: result.requests,
    requestsPerSecond: result.requests / (result.duration_us / 1e6),
    p50Ms: result.p50_us / 1000,
    p99Ms: result.p99_us / 1000,
    socketErrors: result.socket_errors,
    non2xx: result.non_2xx,
  };
}
